import { describe, expect, it } from "vitest";
import catalog from "../test/catalog.fixture.json";
import type { CatalogEntry } from "../catalog/types";
import {
  type Field,
  checkValue,
  configFields,
  defaultConfig,
  humanize,
  newRow,
  pathJoin,
  setIn,
  validateConfig,
} from "./jsonschema";

const entries = catalog as unknown as CatalogEntry[];
const spec = (type: string) => entries.find((e) => e.type === type)!;
const field = (fields: Field[], name: string) => fields.find((f) => f.name === name)!;

describe("humanize", () => {
  it("turns snake case and unit suffixes into labels", () => {
    expect(humanize("poll_interval_ms")).toBe("Poll interval (ms)");
    expect(humanize("unit_id")).toBe("Unit ID");
    expect(humanize("rate_hz")).toBe("Rate (Hz)");
    expect(humanize("url")).toBe("URL");
    expect(humanize("window_s")).toBe("Window (s)");
  });
});

describe("schema → form fields", () => {
  it("maps the Modbus register map to an editable table with typed columns", () => {
    const fields = configFields(spec("modbus.read").config_schema);
    const registers = field(fields, "registers");
    expect(registers.kind).toBe("table");
    const cols = registers.fields!;
    expect(cols.map((c) => c.name)).toEqual([
      "tag", "address", "table", "data_type", "length", "bit", "byte_order", "scale", "offset", "unit",
    ]);
    expect(field(cols, "tag")).toMatchObject({ kind: "string", required: true });
    expect(field(cols, "address")).toMatchObject({ kind: "integer", required: true });
    expect(field(cols, "address").schema.maximum).toBe(65535);
    expect(field(cols, "table")).toMatchObject({ kind: "enum", enumValues: ["coil", "discrete_input", "holding", "input"] });
    // anyOf [enum, null] → a nullable select
    expect(field(cols, "byte_order")).toMatchObject({ kind: "enum", nullable: true });
  });

  it("maps numbers with bounds, nullable strings, enums and booleans", () => {
    const fields = configFields(spec("modbus.read").config_schema);
    expect(field(fields, "port")).toMatchObject({ kind: "integer", default: 502, title: "Port" });
    expect(field(fields, "port").schema).toMatchObject({ minimum: 1, maximum: 65535 });
    expect(field(fields, "host")).toMatchObject({ kind: "string", nullable: true });
    expect(field(fields, "default_byte_order")).toMatchObject({ kind: "enum", default: "ABCD" });
    const expr = configFields(spec("transform.expression").config_schema);
    expect(field(expr, "keep_inputs")).toMatchObject({ kind: "boolean", default: true });
  });

  it("recognises code widgets with their language", () => {
    expect(field(configFields(spec("udf.python").config_schema), "code")).toMatchObject({ kind: "code", language: "python" });
    expect(field(configFields(spec("transform.filter").config_schema), "expression")).toMatchObject({
      kind: "code",
      language: "expression",
    });
  });

  it("maps enum arrays to chips, free objects to JSON and string maps to key/value editors", () => {
    expect(field(configFields(spec("window.tumbling").config_schema), "aggregates")).toMatchObject({
      kind: "multi-enum",
      enumValues: ["avg", "count", "first", "last", "max", "min", "stddev", "sum"],
    });
    expect(field(configFields(spec("udf.python").config_schema), "state_init").kind).toBe("json");
    const headers = field(configFields(spec("sink.http").config_schema), "headers");
    expect(headers.kind).toBe("map");
    expect(headers.value?.kind).toBe("string");
  });

  it("builds every catalog node's form without falling back to raw JSON for simple fields", () => {
    for (const e of entries) {
      for (const f of configFields(e.config_schema)) {
        if (f.kind === "json") expect(f.schema.type).toBe("object");
      }
    }
  });
});

describe("defaults", () => {
  it("fills a new node's config with the schema defaults", () => {
    const cfg = defaultConfig(spec("modbus.read").config_schema);
    expect(cfg).toMatchObject({ port: 502, unit_id: 1, registers: [], default_byte_order: "ABCD", host: null });
    const sim = defaultConfig(spec("simulator").config_schema);
    expect(sim).toEqual({ device_name: "sim", rate_hz: 1, tags: [] });
  });

  it("makes a table row from column defaults", () => {
    const cols = field(configFields(spec("modbus.read").config_schema), "registers").fields!;
    expect(newRow(cols)).toMatchObject({ tag: "", address: 0, table: "holding", data_type: "uint16", byte_order: null, scale: 1 });
  });
});

describe("validation", () => {
  const fields = configFields(spec("modbus.read").config_schema);
  it("reports bounds, types and required fields by JSON path", () => {
    const problems = validateConfig(fields, {
      port: 70000,
      unit_id: 1.5,
      registers: [{ tag: "", address: 3 }, { address: -1 }],
    });
    expect(problems.get("$.port")).toBe("must be at most 65535");
    expect(problems.get("$.unit_id")).toBe("must be a whole number");
    expect(problems.get("$.registers[0].tag")).toBe("must not be empty");
    expect(problems.get("$.registers[1].tag")).toBe("required");
    expect(problems.get("$.registers[1].address")).toBe("must be at least 0");
    expect(problems.has("$.registers[0].address")).toBe(false);
  });

  it("accepts null for nullable fields and checks exclusive minimums", () => {
    expect(validateConfig(fields, { host: null }).size).toBe(0);
    const sim = configFields(spec("simulator").config_schema);
    expect(checkValue(field(sim, "rate_hz"), 0)).toBe("must be greater than 0");
    const win = configFields(spec("window.tumbling").config_schema);
    expect(checkValue(field(win, "aggregates"), [])).toBe("pick at least one");
  });
});

describe("paths", () => {
  it("writes JSON paths the way the Hub does", () => {
    expect(pathJoin(pathJoin("$", "registers"), 2)).toBe("$.registers[2]");
    expect(pathJoin("$", "Voltage L1")).toBe('$["Voltage L1"]');
  });

  it("sets nested values immutably", () => {
    const before = { registers: [{ tag: "a" }, { tag: "b" }], port: 1 };
    const after = setIn(before, ["registers", 1, "tag"], "c");
    expect(after).toEqual({ registers: [{ tag: "a" }, { tag: "c" }], port: 1 });
    expect(before.registers[1]!.tag).toBe("b");
    expect(after.registers[0]).toBe(before.registers[0]);
    expect(setIn({ a: 1, b: 2 }, ["a"], undefined)).toEqual({ b: 2 });
  });
});
