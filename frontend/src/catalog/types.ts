/**
 * The node catalog as GET /api/catalog serves it: the types come from the Hub's OpenAPI document
 * (proxus/catalog.py `NodeTypeInfo`); only the config schema is narrowed to the JSON Schema shape
 * the form generator reads (msgspec generates it; OpenAPI can only call it an object).
 */
import type { components } from "../api/schema";
import type { JsonSchema } from "../schema/jsonschema";

type S = components["schemas"];

export type InputPort = S["InputPortInfo"];
export type OutputPort = S["OutputPortInfo"];
export type PortKind = OutputPort["kind"];
export type Category = S["NodeTypeInfo"]["category"];

export type CatalogEntry = Omit<S["NodeTypeInfo"], "config_schema" | "example"> & {
  config_schema: JsonSchema;
  example: Record<string, unknown> | null;
};

export interface ExpressionHelp {
  functions: Record<string, string>;
  constants: Record<string, string>;
  filter_fields: Record<string, string>;
}

export const CATEGORY_ORDER: Category[] = ["device", "transform", "window", "analytics", "udf", "sink"];

export const CATEGORY_TITLES: Record<string, string> = {
  device: "Devices",
  transform: "Transforms",
  window: "Windows",
  analytics: "Analytics",
  udf: "Functions",
  sink: "Sinks",
};
