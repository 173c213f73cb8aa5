"""``transform.rename``: rename tags and map series into the unified namespace."""

from collections.abc import Iterator
from fnmatch import fnmatchcase
from typing import Annotated

import msgspec
from msgspec import Meta

from nodes.host import NO_OUTPUT, Data, NodeContext, Operator, Outputs
from nodes.points import Batch
from nodes.spec import Category, ConfigProblem, NodeConfig, NodeSpec, points_in, points_out


class Rename(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One renaming rule; the first rule whose pattern matches a series applies."""

    match: Annotated[
        str,
        Meta(
            min_length=1,
            description="Glob pattern matched against the incoming series key "
            "(<device>/<tag>), e.g. meter1/voltage_* or */temp.",
            examples=["meter1/voltage_l1"],
        ),
    ]
    tag: Annotated[
        str,
        Meta(
            description="New tag name for matching series; empty keeps the original tag.",
            examples=["voltage_l1_n"],
        ),
    ] = ""


class RenameConfig(NodeConfig, frozen=True):
    """
    Maps series into the unified namespace: each series key becomes
    enterprise/site/area/line/cell/device/tag, where empty levels are left out. Rules can also give
    tags clearer names.
    """

    enterprise: Annotated[
        str, Meta(description="Enterprise level of the path; empty leaves it out.", examples=["acme"])
    ] = ""
    site: Annotated[
        str, Meta(description="Site (plant) level of the path; empty leaves it out.", examples=["berlin"])
    ] = ""
    area: Annotated[str, Meta(description="Area level of the path; empty leaves it out.", examples=["packaging"])] = ""
    line: Annotated[
        str, Meta(description="Production line level of the path; empty leaves it out.", examples=["line1"])
    ] = ""
    cell: Annotated[str, Meta(description="Work cell level of the path; empty leaves it out.", examples=["filler"])] = (
        ""
    )
    use_device_name: Annotated[
        bool,
        Meta(
            description="Keep the device name as the level before the tag; when off, the path ends in the tag directly."
        ),
    ] = True
    mappings: Annotated[
        list[Rename],
        Meta(description="Renaming rules tried in order; series no rule matches keep their tag."),
    ] = msgspec.field(default_factory=list)

    def problems(self) -> Iterator[ConfigProblem]:
        for level in ("enterprise", "site", "area", "line", "cell"):
            value: str = getattr(self, level)
            if "/" in value:
                yield ConfigProblem(
                    f"$.{level}",
                    f"{level} {value!r} contains '/', which separates levels",
                    "use one name per level, e.g. '-' or '_' instead of '/'",
                )
            elif value and (not value.strip() or value != value.strip()):
                yield ConfigProblem(
                    f"$.{level}",
                    f"{level} {value!r} has leading or trailing whitespace",
                    "remove the spaces, or leave the level empty to omit it",
                )
        for i, rule in enumerate(self.mappings):
            path = f"$.mappings[{i}]"
            if not rule.match.strip():
                yield ConfigProblem(f"{path}.match", "empty pattern", "enter a series key or glob pattern")
            if "/" in rule.tag or (rule.tag and rule.tag != rule.tag.strip()):
                yield ConfigProblem(
                    f"{path}.tag",
                    f"{rule.tag!r} cannot be used as a tag name",
                    "use a name without '/' and without surrounding spaces",
                )


_MAX_CACHE = 100_000  # series keys remembered before the cache starts over


class RenameBehaviour(Operator):
    """Runtime behaviour: ``<device>/<tag>`` becomes
    ``enterprise/site/area/line/cell/<device>/<tag>`` with empty levels left out.

    The tag is the last segment of the incoming key and the device everything before it (so a key
    without '/' is a bare tag). The first rule whose glob matches the whole incoming key renames the
    tag (an empty rule tag keeps it). ``use_device_name`` off drops the device level. The mapping is
    computed once per series key and cached; values, times and qualities pass unchanged.
    """

    def __init__(self, config: RenameConfig, context: NodeContext) -> None:
        self._levels = [v for v in (config.enterprise, config.site, config.area, config.line, config.cell) if v]
        self._use_device = config.use_device_name
        self._rules = [(rule.match.strip(), rule.tag) for rule in config.mappings if rule.match.strip()]
        self._paths: dict[str, str] = {}

    def path(self, series: str) -> str:
        """The unified-namespace path of a series key."""
        device, _, tag = series.rpartition("/")
        for pattern, new_tag in self._rules:
            if fnmatchcase(series, pattern):
                if new_tag:
                    tag = new_tag
                break
        parts = list(self._levels)
        if self._use_device and device:
            parts.append(device)
        parts.append(tag)
        return "/".join(parts)

    def process(self, port: str, data: Data, now_ns: int) -> Outputs:
        if not isinstance(data, Batch) or not data.ts:
            return NO_OUTPUT
        paths = self._paths
        if len(paths) > _MAX_CACHE:
            paths.clear()
        for s in set(data.series).difference(paths):
            paths[s] = self.path(s)
        return (("out", Batch(data.ts, [paths[s] for s in data.series], data.values, data.quality)),)


EXAMPLE = RenameConfig(
    enterprise="acme",
    site="berlin",
    area="utilities",
    line="",
    cell="",
    use_device_name=True,
    mappings=[
        Rename(match="*/voltage_l1", tag="voltage_l1_n"),
        Rename(match="meter1/power_active", tag="active_power"),
    ],
)

SPEC = NodeSpec(
    type_id="transform.rename",
    version=1,
    category=Category.TRANSFORM,
    title="Rename / UNS",
    description="Renames tags and maps series into the unified namespace.",
    config=RenameConfig,
    example=EXAMPLE,
    inputs=(points_in(),),
    outputs=(points_out(),),
    stateful=False,
    icon="tags",
    behaviour=RenameBehaviour,
)
