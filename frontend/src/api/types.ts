/** Names for the Hub's API types, all generated from its OpenAPI document (src/api/schema.d.ts). */
import type { components } from "./schema";

type S = components["schemas"];

export type Me = S["Me"];
export type Role = Me["role"];
export type User = S["User"];

export type FlowDocument = S["FlowDocument"];
export type FlowNode = S["FlowNode"];
export type FlowEdge = S["FlowEdge"];
export type FlowGroup = S["Group"];
export type FlowComment = S["Comment"];
export type FlowMetadata = S["FlowMetadata"];
export type Diagnostic = S["Diagnostic"];

export type FlowSummary = S["FlowSummary"];
export type FlowDetail = S["FlowDetail"];
export type VersionInfo = S["VersionInfo"];
export type FlowVersionDetail = S["FlowVersionDetail"];
export type FlowDiff = S["FlowDiff"];
export type NodeChange = S["NodeChange"];
export type ValidationReport = S["ValidationReport"];
export type CompileReport = S["CompileReport"];
export type ImportReport = S["ImportReport"];

export type Device = S["Device"];
export type CredentialInfo = S["CredentialInfo"];
export type EdgeGateway = S["Edge"];
export type Deployment = S["Deployment"];
export type DeploymentEdge = S["DeploymentEdge"];
export type TemplateSummary = S["TemplateSummary"];
export type Template = S["Template"];
