"""``transform.rename``: rename tags and map series into the unified namespace."""

from collections.abc import Iterator
from typing import Annotated

import msgspec
from msgspec import Meta

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
)
