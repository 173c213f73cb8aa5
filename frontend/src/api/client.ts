/**
 * The Hub API client: openapi-fetch typed by the generated schema (src/api/schema.d.ts).
 *
 * Cookie session; every change (POST/PUT/PATCH/DELETE) carries the session's CSRF token in
 * `X-CSRF-Token`. Errors become {@link ApiError} with the Hub's JSON body.
 */
import createClient, { type Middleware } from "openapi-fetch";
import type { paths } from "./schema";

export interface ErrorDetail {
  field: string;
  message: string;
  node_id?: string | null;
}

export interface ErrorBody {
  error: string;
  message: string;
  details?: ErrorDetail[];
  extra?: Record<string, unknown> | null;
}

export class ApiError extends Error {
  readonly status: number;
  readonly body: ErrorBody;
  constructor(status: number, body: ErrorBody) {
    super(body.message || body.error || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
  get code(): string {
    return this.body.error;
  }
}

let csrfToken = "";
export function setCsrfToken(token: string): void {
  csrfToken = token;
}

/** Called when the session ends (401 on a request other than the auth probes). */
let onUnauthenticated: () => void = () => {};
export function setUnauthenticatedHandler(handler: () => void): void {
  onUnauthenticated = handler;
}

const UNSAFE = new Set(["POST", "PUT", "PATCH", "DELETE"]);

const csrf: Middleware = {
  onRequest({ request }) {
    if (UNSAFE.has(request.method) && csrfToken) request.headers.set("X-CSRF-Token", csrfToken);
    return request;
  },
};

export const api = createClient<paths>({ baseUrl: "", credentials: "same-origin" });
api.use(csrf);

export async function toApiError(response: Response, body: unknown): Promise<ApiError> {
  const parsed: ErrorBody =
    body && typeof body === "object" && "message" in (body as object)
      ? (body as ErrorBody)
      : { error: "http_error", message: `${response.status} ${response.statusText}`.trim() };
  if (response.status === 401 && !response.url.includes("/api/auth/")) onUnauthenticated();
  return new ApiError(response.status, parsed);
}

/** Unwrap an openapi-fetch result: the data, or throw the Hub's error as an ApiError. */
export async function unwrap<T>(
  promise: Promise<{ data?: T; error?: unknown; response: Response }>,
): Promise<T> {
  const { data, error, response } = await promise;
  if (!response.ok) throw await toApiError(response, error);
  return data as T;
}

/**
 * Plain fetch with the same conventions, for endpoints whose body or response is not JSON
 * (file export) or that the generated schema does not type (the catalog's free-form entries).
 */
export async function request<T>(
  method: string,
  url: string,
  body?: unknown,
  init: { raw?: boolean; signal?: AbortSignal; text?: boolean } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  // `text`: the body is sent as it is (a file's bytes), not JSON-encoded.
  if (UNSAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  const response = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : init.text ? String(body) : JSON.stringify(body),
    signal: init.signal,
  });
  if (!response.ok) {
    let parsed: unknown = null;
    try {
      parsed = await response.json();
    } catch {
      /* not JSON */
    }
    throw await toApiError(response, parsed);
  }
  if (init.raw) return response as unknown as T;
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  return (text ? JSON.parse(text) : undefined) as T;
}

export function errorMessage(err: unknown): string {
  if (err instanceof ApiError) {
    const details = err.body.details?.filter((d) => d.message && d.message !== err.message) ?? [];
    return details.length ? `${err.message} (${details.map((d) => `${d.field}: ${d.message}`).join("; ")})` : err.message;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}
