"""Templates: checking, saving, importing, exporting and instantiating them. All SQL lives here.

A template is a flow document with ``{{name}}`` placeholders (see :mod:`.placeholders`) plus the
parameters that fill them, and optionally a dashboard definition. Built-in templates ship as JSON
files in ``builtin/`` and are read-only; user templates live in the ``templates`` table.
"""

from __future__ import annotations

import copy
import logging
import math
import re
import secrets
from collections.abc import Iterable, Mapping
from typing import Any

import asyncpg  # type: ignore[import-untyped, unused-ignore]
import msgspec

from backend.audit.service import record
from backend.auth.principal import Principal
from backend.errors import ApiError, FieldProblem, conflict, not_found
from backend.flows import service as flows
from backend.templates import placeholders as ph
from backend.templates.schemas import (
    BUILTIN_PREFIX,
    TEMPLATE_FORMAT,
    TEMPLATE_SCHEMA_VERSION,
    DashboardResult,
    Instantiate,
    Instantiated,
    Parameter,
    ParameterIn,
    Preview,
    PreviewEdge,
    PreviewNode,
    PreviewPosition,
    Template,
    TemplateCreate,
    TemplateFile,
    TemplateSaved,
)
from proxus.catalog import Catalog
from proxus.compiler import validate_flow
from proxus.diagnostics import Diagnostic, has_errors, join_path
from proxus.flow import FLOW_FORMAT, FLOW_SCHEMA_VERSION, MAX_FLOW_BYTES, load_flow
from proxus.registry import EMPTY_REGISTRY, Registry
from proxus.validation import decode

log = logging.getLogger("proxus.hub.templates")

MAX_STRING_VALUE = 10_000
_EDGE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_DOC_KEYS = ("metadata", "nodes", "edges", "groups", "comments")


# -- parameter values ---------------------------------------------------------------------------


def check_value(param: Parameter, value: Any) -> tuple[Any, str | None]:
    """The value normalised for the parameter's kind, or the reason it does not fit."""
    kind = param.kind
    if kind in ("string", "device", "edge"):
        if not isinstance(value, str):
            return None, f"expected text, got {_describe(value)}"
        if len(value) > MAX_STRING_VALUE:
            return None, f"at most {MAX_STRING_VALUE} characters"
        if kind == "device" and not value.strip():
            return None, "choose a device"
        if kind == "edge" and not _EDGE_ID.match(value):
            return None, f"{value!r} is not an edge id (letters, digits, '_' and '-')"
        return value, None
    if kind == "boolean":
        if not isinstance(value, bool):
            return None, f"expected true or false, got {_describe(value)}"
        return value, None
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None, f"expected a number, got {_describe(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return None, "expected a finite number"
        if kind == "integer" and isinstance(value, float):
            if not value.is_integer():
                return None, f"expected a whole number, got {value!r}"
            value = int(value)
        if param.min is not None and value < param.min:
            return None, f"must be at least {_num(param.min)}; got {value!r}"
        if param.max is not None and value > param.max:
            return None, f"must be at most {_num(param.max)}; got {value!r}"
        return value, None
    # enum
    options = param.options or []
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    for option in options:
        same_kind = type(option) is type(value) or (numeric and isinstance(option, int | float))
        if same_kind and option == value:
            return option, None
    return None, f"must be one of {', '.join(repr(o) for o in options)}; got {_describe(value)}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f'the text "{value[:40]}"'
    return type(value).__name__


def resolve_values(
    parameters: list[Parameter],
    values: Mapping[str, Any],
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Every parameter's value (given, else default), type-checked; raises 400 naming the parameter.

    An explicit ``null`` for an optional parameter means "not set": its placeholders are removed
    (see :mod:`.placeholders`). ``registry``: the Hub's devices and edges, to check device and edge
    values against (``None`` when unknown); an edge parameter given no value and no default takes
    the Hub's only edge when there is exactly one.
    """
    known = {p.name: p for p in parameters}
    problems: list[FieldProblem] = []
    for name in values:
        if name not in known:
            problems.append(
                FieldProblem(f"values.{name}", f"the template has no parameter {name!r} (it has {_list(known)})")
            )
    resolved: dict[str, Any] = {}
    for param in parameters:
        field = f"values.{param.name}"
        value = values.get(param.name, param.default)
        only_edge = registry is not None and registry.edges is not None and len(registry.edges) == 1
        if value is None and param.kind == "edge" and param.name not in values and only_edge:
            assert registry is not None and registry.edges is not None
            (value,) = registry.edges  # the Hub has one edge: that is where the flow runs
        if value is None:
            if param.required:
                problems.append(FieldProblem(field, f"parameter {param.name!r} ({_label(param)}) needs a value"))
            resolved[param.name] = None
            continue
        checked, why = check_value(param, value)
        if why is not None:
            problems.append(FieldProblem(field, f"parameter {param.name!r} ({_label(param)}): {why}"))
            continue
        if registry is not None and param.kind == "device" and checked not in registry.devices:
            problems.append(FieldProblem(field, f"parameter {param.name!r}: device {checked!r} is not registered"))
        if (
            registry is not None
            and param.kind == "edge"
            and registry.edges is not None
            and checked not in registry.edges
        ):
            problems.append(FieldProblem(field, f"parameter {param.name!r}: edge {checked!r} is not registered"))
        resolved[param.name] = checked
    if problems:
        raise ApiError(400, "invalid_values", "; ".join(p.message for p in problems), details=problems)
    return resolved


def _label(param: Parameter) -> str:
    return param.label or param.name


def _list(names: Iterable[str]) -> str:
    listed = [repr(n) for n in names]
    return ", ".join(listed) if listed else "none"


# -- checking a template ------------------------------------------------------------------------


def _error(path: str, message: str, code: str = "invalid_template", **kw: Any) -> Diagnostic:
    return Diagnostic(severity="error", code=code, message=message, path=path, **kw)


def normalize_document(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A full flow document from a flow or a bare selection ({nodes, edges}); deep-copied."""
    out: dict[str, Any] = {
        "format": raw.get("format", FLOW_FORMAT),
        "schema_version": raw.get("schema_version", FLOW_SCHEMA_VERSION),
        "id": "template",
        "name": name,
    }
    for key in _DOC_KEYS:
        if key in raw:
            out[key] = copy.deepcopy(raw[key])
    for key in raw:
        if key not in out and key not in ("id", "name", "version"):
            out[key] = copy.deepcopy(raw[key])  # unknown keys: load_flow reports them
    return out


def check_parameters(parameters: list[Parameter], at: str = "$.parameters") -> list[Diagnostic]:
    errors: list[Diagnostic] = []
    seen: dict[str, int] = {}
    for i, param in enumerate(parameters):
        path = f"{at}[{i}]"
        if param.name in seen:
            errors.append(
                _error(f"{path}.name", f"parameter {param.name!r} is defined twice (also {at}[{seen[param.name]}])")
            )
        seen.setdefault(param.name, i)
        if param.kind == "enum":
            if not param.options:
                errors.append(_error(f"{path}.options", "an enum parameter needs options"))
            elif len({repr(o) for o in param.options}) != len(param.options):
                errors.append(_error(f"{path}.options", "options are listed twice"))
        elif param.options is not None:
            errors.append(_error(f"{path}.options", f"options only apply to enum parameters, not {param.kind}"))
        if param.kind not in ("number", "integer"):
            for bound in ("min", "max"):
                if getattr(param, bound) is not None:
                    errors.append(_error(f"{path}.{bound}", f"{bound} only applies to number and integer parameters"))
        elif param.min is not None and param.max is not None and param.min > param.max:
            errors.append(_error(f"{path}.max", f"max {_num(param.max)} is below min {_num(param.min)}"))
        if param.default is not None and (param.kind != "enum" or param.options):
            _, why = check_value(param, param.default)
            if why is not None:
                errors.append(_error(f"{path}.default", f"the default does not fit: {why}"))
    return errors


def check_placeholders(
    parameters: list[Parameter], document: dict[str, Any], dashboard: dict[str, Any] | None
) -> list[Diagnostic]:
    """Every placeholder needs a parameter, every parameter a placeholder, none in the structure."""
    errors: list[Diagnostic] = []
    names = {p.name for p in parameters}
    used: set[str] = set()
    for where, value, structural in (("document", document, True), ("dashboard", dashboard, False)):
        if value is None:
            continue
        for occ in ph.find(value):
            used.add(occ.name)
            path = join_path(f"$.{where}", occ.path)
            if occ.in_key:
                errors.append(_error(path, f"placeholder {{{{{occ.name}}}}} stands in a key; only values can vary"))
            elif structural and ph.is_structural(occ.parts):
                errors.append(
                    _error(
                        path,
                        f"placeholder {{{{{occ.name}}}}} is part of the flow's structure (ids, types, wires); "
                        "those cannot vary",
                    )
                )
            if occ.name not in names:
                errors.append(
                    _error(
                        path, f"placeholder {{{{{occ.name}}}}} has no parameter", hint=f"add a parameter {occ.name!r}"
                    )
                )
    for i, param in enumerate(parameters):
        if param.name not in used:
            errors.append(
                _error(
                    f"$.parameters[{i}].name",
                    f"parameter {param.name!r} is not used: no {{{{{param.name}}}}} in the document or dashboard",
                    hint="add a target, or remove the parameter",
                )
            )
    return errors


def _probe(param: Parameter) -> Any:
    """A stand-in value of the right type, for checking the document's shape."""
    if param.default is not None:
        return param.default
    if param.kind == "enum" and param.options:
        return param.options[0]
    if param.kind in ("number", "integer"):
        low = param.min if param.min is not None else 0
        return int(low) if param.kind == "integer" else float(low)
    if param.kind == "boolean":
        return False
    if param.kind == "edge":
        return "local"
    return "x" if param.required else None


def check_dashboard(dashboard: dict[str, Any]) -> list[Diagnostic]:
    """The dashboard definition must be one the data domain accepts (name and flow are set later)."""
    from backend.data.service import coerce_spec

    try:
        coerce_spec({"name": "dashboard", **dashboard, "flow_id": None})
    except ApiError as exc:
        field = exc.details[0].field if exc.details else ""
        path = "$.dashboard" + ("" if field in ("", "dashboard") else f".{field}")
        return [_error(path, exc.message)]
    return []


def check_template(
    parameters: list[Parameter],
    document: dict[str, Any],
    dashboard: dict[str, Any] | None,
    catalog: Catalog,
    registry: Registry = EMPTY_REGISTRY,
) -> tuple[list[Diagnostic], list[Diagnostic]]:
    """(errors that refuse the template, what compiling it with its defaults says).

    Paths are relative to the template: ``$.parameters[1].default``, ``$.document.nodes[0].config``.
    """
    errors = check_parameters(parameters)
    errors += check_placeholders(parameters, document, dashboard)
    probes = {p.name: _probe(p) for p in parameters}
    if dashboard is not None:
        errors += check_dashboard(ph.substitute(dashboard, probes))
    doc, structural = load_flow(ph.substitute(document, probes))
    for d in structural:
        if d.severity == "error":
            errors.append(msgspec.structs.replace(d, path=join_path("$.document", d.path)))
    if errors or doc is None:
        return errors, []
    if any(p.required and p.default is None for p in parameters):
        return [], []  # nothing to compile until someone supplies the values
    defaults = {p.name: p.default for p in parameters}
    _, result = validate_flow(ph.substitute(document, defaults), catalog, registry)
    return [], [msgspec.structs.replace(d, path=join_path("$.document", d.path)) for d in result.diagnostics]


def select(document: dict[str, Any], node_ids: list[str]) -> tuple[dict[str, Any], list[Diagnostic]]:
    """Keep only ``node_ids`` and the wires between them (and groups' members among them)."""
    nodes = [n for n in document.get("nodes", []) if isinstance(n, dict)]
    present = {n.get("id") for n in nodes}
    errors = [
        _error(f"$.node_ids[{i}]", f"node {node_id!r} is not in the document")
        for i, node_id in enumerate(node_ids)
        if node_id not in present
    ]
    keep = set(node_ids)
    out = dict(document)
    out["nodes"] = [n for n in nodes if n.get("id") in keep]
    out["edges"] = [
        e
        for e in document.get("edges", [])
        if isinstance(e, dict) and e.get("source") in keep and e.get("target") in keep
    ]
    groups = []
    for group in document.get("groups", []):
        if isinstance(group, dict) and isinstance(group.get("nodes"), list):
            members = [m for m in group["nodes"] if m in keep]
            if members:
                groups.append({**group, "nodes": members})
    out["groups"] = groups
    out["comments"] = []
    return out, errors


def apply_targets(document: dict[str, Any], parameters: list[ParameterIn]) -> tuple[list[Parameter], list[Diagnostic]]:
    """Turn each parameter's target paths into placeholders (in place); defaults from current values."""
    out: list[Parameter] = []
    errors: list[Diagnostic] = []
    for i, param in enumerate(parameters):
        default = param.default
        for j, target in enumerate(param.targets):
            path = f"$.parameters[{i}].targets[{j}]"
            try:
                parts = ph.parse_path(target)
            except ph.PathError as exc:
                errors.append(_error(path, f"{target!r}: {exc}"))
                continue
            if ph.is_structural(parts):
                errors.append(_error(path, f"{target} is part of the flow's structure (ids, types, wires)"))
                continue
            found, current = ph.get_at(document, parts)
            if found and isinstance(current, dict | list):
                errors.append(
                    _error(
                        path,
                        f"{target} holds {'an object' if isinstance(current, dict) else 'a list'}; "
                        "a parameter replaces a single value",
                    )
                )
                continue
            if found and default is None and not (isinstance(current, str) and ph.PLACEHOLDER.search(current)):
                default = current  # the value being replaced is the natural default
            try:
                ph.set_at(document, parts, ph.placeholder(param.name))
            except ph.PathError as exc:
                errors.append(_error(path, f"{target}: {exc}"))
        fields = {f: getattr(param, f) for f in Parameter.__struct_fields__}
        fields["default"] = default
        out.append(Parameter(**fields))
    return out, errors


def make_preview(document: Mapping[str, Any], catalog: Catalog, values: Mapping[str, Any] | None = None) -> Preview:
    """Node types, labels, positions and wires of the document, for the gallery thumbnail."""
    shown = ph.substitute(dict(document), dict(values)) if values else document
    nodes = []
    for node in shown.get("nodes", []):
        if not isinstance(node, dict):
            continue
        type_id = str(node.get("type", ""))
        spec = catalog.get(type_id)
        pos = node.get("position") if isinstance(node.get("position"), dict) else {}
        assert isinstance(pos, dict)
        nodes.append(
            PreviewNode(
                id=str(node.get("id", "")),
                type=type_id,
                label=str(node.get("label") or (spec.title if spec else type_id)),
                category=spec.category.value if spec else "",
                position=PreviewPosition(x=_float(pos.get("x")), y=_float(pos.get("y"))),
            )
        )
    edges = [
        PreviewEdge(
            id=str(e.get("id", "")),
            source=str(e.get("source", "")),
            target=str(e.get("target", "")),
            source_port=str(e.get("source_port", "out")),
            target_port=str(e.get("target_port", "in")),
        )
        for e in shown.get("edges", [])
        if isinstance(e, dict)
    ]
    return Preview(nodes=nodes, edges=edges)


def _float(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _defaults(parameters: list[Parameter]) -> dict[str, Any]:
    return {p.name: p.default for p in parameters if p.default is not None}


def refuse(message: str, errors: list[Diagnostic], code: str = "invalid_template") -> ApiError:
    details = [FieldProblem(d.path, d.message, d.node_id) for d in errors if d.severity == "error"]
    return ApiError(
        400,
        code,
        f"{message}: " + "; ".join(f"{d.path}: {d.message}" for d in errors[:5]) + ("; …" if len(errors) > 5 else ""),
        details=details,
        extra={"diagnostics": msgspec.to_builtins(errors)},
    )


# -- built-in templates ---------------------------------------------------------------------------


def load_builtin(raw: bytes, catalog: Catalog, source: str) -> Template:
    """A shipped template file; raises ValueError with every problem when it is broken."""
    file, problems = decode_file(raw)
    if file is None:
        raise ValueError(f"{source}: " + "; ".join(f"{d.path}: {d.message}" for d in problems))
    if not file.id.startswith(BUILTIN_PREFIX):
        raise ValueError(f"{source}: a built-in template id starts with {BUILTIN_PREFIX!r}")
    document = normalize_document(file.document, file.name)
    errors, _ = check_template(file.parameters, document, file.dashboard, catalog)
    if errors:
        raise ValueError(f"{source}: " + "; ".join(f"{d.path}: {d.message}" for d in errors))
    return Template(
        id=file.id,
        name=file.name,
        description=file.description,
        category=file.category,
        builtin=True,
        parameters=file.parameters,
        document=document,
        dashboard=file.dashboard,
        preview=make_preview(document, catalog, _defaults(file.parameters)),
    )


def load_builtins(catalog: Catalog) -> dict[str, Template]:
    """Every template in ``backend/templates/builtin/*.json``; a broken one is logged and skipped."""
    from importlib import resources

    found: dict[str, Template] = {}
    folder = resources.files("backend.templates").joinpath("builtin")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if not entry.name.endswith(".json"):
            continue
        try:
            template = load_builtin(entry.read_bytes(), catalog, entry.name)
        except ValueError as exc:
            log.error("built-in template skipped: %s", exc)
            continue
        except Exception:  # a bug elsewhere (e.g. the dashboard schema) must not stop the Hub
            log.exception("built-in template %s skipped", entry.name)
            continue
        if template.id in found:
            log.error("built-in template %s: id %r is used twice", entry.name, template.id)
            continue
        found[template.id] = template
    return found


# -- export and import ----------------------------------------------------------------------------


def to_file(template: Template) -> TemplateFile:
    return TemplateFile(
        format=TEMPLATE_FORMAT,
        schema_version=TEMPLATE_SCHEMA_VERSION,
        id=template.id,
        name=template.name,
        description=template.description,
        category=template.category,
        parameters=template.parameters,
        document=template.document,
        dashboard=template.dashboard,
    )


def decode_file(data: bytes | Any) -> tuple[TemplateFile | None, list[Diagnostic]]:
    """Parse a template file; every shape problem with its JSON path. Nothing is executed."""
    if isinstance(data, bytes | bytearray):
        if len(data) > MAX_FLOW_BYTES:
            return None, [_error("$", f"the file is {len(data):,} bytes; the limit is {MAX_FLOW_BYTES:,}", "too_large")]
        try:
            raw = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            return None, [_error("$", f"the file is not valid JSON: {exc}", "invalid_json")]
    else:
        raw = data
    if not isinstance(raw, dict):
        return None, [_error("$", "a template file is a JSON object", "invalid_document")]
    if raw.get("format") != TEMPLATE_FORMAT:
        hint = "this is a flow: import it as a flow" if raw.get("format") == FLOW_FORMAT else ""
        return None, [
            _error(
                "$.format",
                f"this is not a Proxus template (format is {raw.get('format')!r}, expected {TEMPLATE_FORMAT!r})",
                "wrong_format",
                hint=hint,
            )
        ]
    version = raw.get("schema_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > TEMPLATE_SCHEMA_VERSION:
        return None, [
            _error(
                "$.schema_version",
                f"the template uses schema version {version}; this Hub reads up to {TEMPLATE_SCHEMA_VERSION}",
                "newer_schema",
            )
        ]
    file, problems = decode(raw, TemplateFile)
    return file, [_error(p.path, p.message, "invalid_document") for p in problems]


# -- database -------------------------------------------------------------------------------------

_COLUMNS = "id, name, description, category, parameters, document, dashboard, created_by, created_at"


def _from_row(row: Mapping[str, Any], catalog: Catalog) -> Template:
    parameters = msgspec.convert(row["parameters"], list[Parameter])
    return Template(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        category=row["category"],
        builtin=False,
        parameters=parameters,
        document=row["document"],
        dashboard=row["dashboard"],
        preview=make_preview(row["document"], catalog, _defaults(parameters)),
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


async def list_templates(
    conn: asyncpg.Connection, builtins: Mapping[str, Template], catalog: Catalog, category: str | None, q: str | None
) -> list[Template]:
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM templates
            WHERE ($1::text IS NULL OR category = $1)
              AND ($2::text IS NULL OR name ILIKE '%' || $2 || '%' OR description ILIKE '%' || $2 || '%')
            ORDER BY lower(name), id""",
        category,
        q,
    )
    shipped = [
        t
        for t in builtins.values()
        if (category is None or t.category == category)
        and (q is None or q.lower() in t.name.lower() or q.lower() in t.description.lower())
    ]
    return sorted(shipped, key=lambda t: t.name.lower()) + [_from_row(r, catalog) for r in rows]


async def get_template(
    conn: asyncpg.Connection, builtins: Mapping[str, Template], catalog: Catalog, template_id: str
) -> Template:
    if template_id in builtins:
        return builtins[template_id]
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM templates WHERE id = $1", template_id)
    if row is None:
        raise not_found("template", template_id)
    return _from_row(row, catalog)


async def _insert(
    conn: asyncpg.Connection,
    who: Principal,
    catalog: Catalog,
    *,
    name: str,
    description: str,
    category: str,
    parameters: list[Parameter],
    document: dict[str, Any],
    dashboard: dict[str, Any] | None,
    action: str,
    address: str,
) -> Template:
    template_id = "tpl-" + secrets.token_hex(8)
    async with conn.transaction():
        row = await conn.fetchrow(
            f"""INSERT INTO templates (id, name, description, category, parameters, document, dashboard, created_by)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {_COLUMNS}""",
            template_id,
            name,
            description,
            category,
            msgspec.to_builtins(parameters),
            document,
            dashboard,
            who.username,
        )
        template = _from_row(row, catalog)
        await record(conn, who, action, "template", template_id, after=template, address=address)
    return template


async def create_template(
    conn: asyncpg.Connection,
    who: Principal,
    catalog: Catalog,
    data: TemplateCreate,
    address: str,
    registry: Registry = EMPTY_REGISTRY,
) -> TemplateSaved:
    document = normalize_document(data.document, data.name)
    parameters, errors = apply_targets(document, data.parameters)
    if data.node_ids is not None:
        document, missing = select(document, data.node_ids)
        errors += missing
    if not errors:
        more, diagnostics = check_template(parameters, document, data.dashboard, catalog, registry)
        errors += more
    if errors:
        raise refuse("the template cannot be saved", errors)
    template = await _insert(
        conn,
        who,
        catalog,
        name=data.name,
        description=data.description,
        category=data.category,
        parameters=parameters,
        document=document,
        dashboard=data.dashboard,
        action="template.create",
        address=address,
    )
    return TemplateSaved(template=template, diagnostics=diagnostics)


async def import_template(
    conn: asyncpg.Connection,
    who: Principal,
    catalog: Catalog,
    body: bytes,
    address: str,
    registry: Registry = EMPTY_REGISTRY,
) -> TemplateSaved:
    file, problems = decode_file(body)
    if file is None or problems:
        raise refuse("the file cannot be imported", problems, "invalid_import")
    document = normalize_document(file.document, file.name)
    errors, diagnostics = check_template(file.parameters, document, file.dashboard, catalog, registry)
    if errors:
        raise refuse("the file cannot be imported", errors, "invalid_import")
    template = await _insert(
        conn,
        who,
        catalog,
        name=file.name,
        description=file.description,
        category=file.category,
        parameters=file.parameters,
        document=document,
        dashboard=file.dashboard,
        action="template.import",
        address=address,
    )
    return TemplateSaved(template=template, diagnostics=diagnostics)


async def delete_template(
    conn: asyncpg.Connection,
    who: Principal,
    builtins: Mapping[str, Template],
    catalog: Catalog,
    template_id: str,
    address: str,
) -> None:
    if template_id in builtins or template_id.startswith(BUILTIN_PREFIX):
        raise conflict(f"template {template_id!r} is built in and cannot be deleted")
    async with conn.transaction():
        row = await conn.fetchrow(f"DELETE FROM templates WHERE id = $1 RETURNING {_COLUMNS}", template_id)
        if row is None:
            raise not_found("template", template_id)
        await record(
            conn, who, "template.delete", "template", template_id, before=_from_row(row, catalog), address=address
        )


# -- instantiation --------------------------------------------------------------------------------


def new_flow_id(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:48] or "flow"
    return f"{slug}-{secrets.token_hex(3)}"


def render(
    template: Template, values: Mapping[str, Any], name: str, flow_id: str
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The flow document (and dashboard) with ``values`` substituted, named and with its new id."""
    document: dict[str, Any] = ph.substitute(template.document, dict(values))
    document.update(id=flow_id, name=name, version=1)
    dashboard = ph.substitute(template.dashboard, dict(values)) if template.dashboard is not None else None
    if isinstance(dashboard, dict):
        dashboard.setdefault("name", name)
    return document, dashboard


def build(
    template: Template,
    request: Instantiate,
    catalog: Catalog,
    registry: Registry | None,
) -> tuple[dict[str, Any], dict[str, Any] | None, list[Diagnostic]]:
    """Type-check values, substitute, validate; raises 400 on a value or compile error."""
    values = resolve_values(template.parameters, request.values, registry)
    flow_id = request.flow_id or new_flow_id(request.name)
    document, dashboard = render(template, values, request.name, flow_id)
    _, result = validate_flow(document, catalog, registry or EMPTY_REGISTRY)
    if has_errors(result.diagnostics):
        raise refuse("the flow would not compile", result.diagnostics, "invalid_flow")
    return document, dashboard, result.diagnostics


async def hub_registry(conn: asyncpg.Connection) -> Registry:
    """The Hub's devices and edges, as the compiler resolves them (the devices domain's)."""
    from backend.devices.service import registry

    return await registry(conn)


async def instantiate(
    conn: asyncpg.Connection,
    who: Principal,
    catalog: Catalog,
    template: Template,
    request: Instantiate,
    address: str,
) -> Instantiated:
    registry = await hub_registry(conn)
    document, dashboard, diagnostics = build(template, request, catalog, registry)
    flow_id = str(document["id"])
    if request.dry_run:
        return Instantiated(
            flow_id=flow_id,
            created=False,
            diagnostics=diagnostics,
            document=document,
            dashboard=DashboardResult(created=False, definition=dashboard) if dashboard is not None else None,
        )
    flow_doc, _ = load_flow(document)
    assert flow_doc is not None  # validate_flow accepted it
    dashboard_result: DashboardResult | None = None
    async with conn.transaction():
        created = await flows.create_from_document(conn, who, flow_doc, f"from template {template.name}", address)
        flow_id, version = created.id, created.latest_version
        if dashboard is not None:
            from backend.data.service import create_dashboard

            made = await create_dashboard(conn, who, {**dashboard, "flow_id": flow_id}, address=address)
            dashboard_result = DashboardResult(created=True, id=made.id, definition=dashboard)
        await record(
            conn,
            who,
            "template.instantiate",
            "template",
            template.id,
            after={"flow_id": flow_id, "version": version, "values": dict(request.values)},
            address=address,
        )
    return Instantiated(
        flow_id=flow_id,
        created=True,
        version=version,
        diagnostics=diagnostics,
        document=document,
        dashboard=dashboard_result,
    )
