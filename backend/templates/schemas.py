"""What the templates API accepts and returns."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from proxus.diagnostics import Diagnostic

TEMPLATE_FORMAT: Literal["proxus.template"] = "proxus.template"
TEMPLATE_SCHEMA_VERSION = 1
BUILTIN_PREFIX = "builtin-"

TemplateId = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Template id ('builtin-…' for shipped templates)"),
]
ParamName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$",
        description="Parameter name, used as {{name}} in the document: a letter or '_', then letters, digits, '_'",
    ),
]
ParamKind = Literal["string", "number", "integer", "boolean", "device", "edge", "enum"]
Scalar = str | int | float | bool
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="Shown in the template gallery")]
Description = Annotated[str, msgspec.Meta(max_length=5000, description="What the template builds")]
Category = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[a-z0-9][a-z0-9 _-]{0,63}$",
        description="Gallery section, e.g. 'devices', 'alarms', 'analytics' (lower case)",
    ),
]
TargetPath = Annotated[
    str,
    msgspec.Meta(
        min_length=2,
        max_length=1000,
        description="JSON path into the submitted document whose value becomes this parameter, "
        "e.g. $.nodes[2].config.high",
    ),
]
FlowId = Annotated[
    str,
    msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="Id of the new flow (default: made from the name)"),
]
SafeNodeId = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class Parameter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One value the user fills in when instantiating a template."""

    name: ParamName
    label: Annotated[str, msgspec.Meta(max_length=200, description="Form label (default: the name)")] = ""
    kind: Annotated[
        ParamKind,
        msgspec.Meta(
            description="string, number, integer, boolean, device (a managed device id), edge (an edge id) "
            "or enum (one of options)"
        ),
    ] = "string"
    default: Annotated[Scalar | None, msgspec.Meta(description="Value used when none is given")] = None
    required: Annotated[bool, msgspec.Meta(description="Whether a value (or the default) must be present")] = True
    description: Annotated[str, msgspec.Meta(max_length=2000, description="Help text for the form")] = ""
    options: Annotated[
        Annotated[list[str | int | float], msgspec.Meta(max_length=500)] | None,
        msgspec.Meta(description="The allowed values of an enum parameter"),
    ] = None
    min: Annotated[float | None, msgspec.Meta(description="Lowest allowed number")] = None
    max: Annotated[float | None, msgspec.Meta(description="Highest allowed number")] = None


class ParameterIn(Parameter, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A parameter as saved: optionally the document locations it replaces."""

    targets: Annotated[
        list[TargetPath],
        msgspec.Meta(
            max_length=100,
            description="Document values to turn into {{name}}; with no default, the first target's "
            "current value becomes the default",
        ),
    ] = msgspec.field(default_factory=list)


class PreviewPosition(msgspec.Struct, frozen=True):
    x: float
    y: float


class PreviewNode(msgspec.Struct, frozen=True):
    id: str
    type: str
    label: str
    category: Annotated[str, msgspec.Meta(description="Catalog category ('' for an unknown type)")]
    position: PreviewPosition


class PreviewEdge(msgspec.Struct, frozen=True):
    id: str
    source: str
    target: str
    source_port: str
    target_port: str


class Preview(msgspec.Struct, frozen=True):
    """A summary of the document for drawing a thumbnail: nodes with positions, and wires."""

    nodes: list[PreviewNode]
    edges: list[PreviewEdge]


class TemplateSummary(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str
    category: str
    builtin: bool
    parameters: list[Parameter]
    preview: Preview
    has_dashboard: bool
    created_by: str | None = None
    created_at: datetime | None = None


class Template(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str
    category: str
    builtin: bool
    parameters: list[Parameter]
    document: Annotated[dict[str, Any], msgspec.Meta(description="Flow document with {{name}} placeholders")]
    dashboard: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(description="Dashboard definition created with the flow (panels, series, time range)"),
    ] = None
    preview: Preview
    created_by: str | None = None
    created_at: datetime | None = None

    def summary(self) -> TemplateSummary:
        return TemplateSummary(
            id=self.id,
            name=self.name,
            description=self.description,
            category=self.category,
            builtin=self.builtin,
            parameters=self.parameters,
            preview=self.preview,
            has_dashboard=self.dashboard is not None,
            created_by=self.created_by,
            created_at=self.created_at,
        )


class TemplateCreate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Save a flow, or a selection of it, as a template."""

    name: Name
    description: Description = ""
    category: Category = "custom"
    document: Annotated[
        dict[str, Any],
        msgspec.Meta(description="A flow document, or just {nodes, edges} of a selection"),
    ]
    parameters: Annotated[list[ParameterIn], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    node_ids: Annotated[
        Annotated[list[SafeNodeId], msgspec.Meta(max_length=10_000)] | None,
        msgspec.Meta(description="Keep only these nodes and the wires between them"),
    ] = None
    dashboard: Annotated[dict[str, Any] | None, msgspec.Meta(description="Dashboard definition to include")] = None


class TemplateSaved(msgspec.Struct, frozen=True):
    template: Template
    diagnostics: Annotated[
        list[Diagnostic],
        msgspec.Meta(description="What compiling the template with its defaults says (paths under $.document)"),
    ]


class TemplateFile(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """The export/import file of a template."""

    format: Literal["proxus.template"]
    schema_version: Annotated[int, msgspec.Meta(ge=1, le=TEMPLATE_SCHEMA_VERSION)]
    id: Annotated[str, msgspec.Meta(max_length=64, description="Id on the exporting Hub (not reused)")] = ""
    name: Name
    description: Description = ""
    category: Category = "custom"
    parameters: Annotated[list[Parameter], msgspec.Meta(max_length=100)] = msgspec.field(default_factory=list)
    document: dict[str, Any]
    dashboard: dict[str, Any] | None = None


class Instantiate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Create a flow from a template."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200, description="Name of the new flow")]
    flow_id: FlowId | None = None
    values: Annotated[
        dict[str, Scalar | None],
        msgspec.Meta(description="Parameter values by name; missing ones take their defaults"),
    ] = msgspec.field(default_factory=dict)
    dry_run: Annotated[bool, msgspec.Meta(description="Only build and check the document; create nothing")] = False


class DashboardResult(msgspec.Struct, frozen=True, omit_defaults=True):
    created: Annotated[bool, msgspec.Meta(description="Whether the dashboard was created")]
    id: Annotated[int | None, msgspec.Meta(description="Id of the created dashboard")] = None
    definition: Annotated[
        dict[str, Any] | None,
        msgspec.Meta(description="The dashboard definition, parameters substituted"),
    ] = None


class Instantiated(msgspec.Struct, frozen=True, kw_only=True):
    flow_id: str
    created: Annotated[bool, msgspec.Meta(description="False for a dry run")]
    version: int | None = None
    diagnostics: list[Diagnostic]
    document: Annotated[dict[str, Any], msgspec.Meta(description="The flow document that was (or would be) created")]
    dashboard: DashboardResult | None = None
