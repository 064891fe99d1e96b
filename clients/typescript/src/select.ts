// A typed call to POST /v1/pools/{pool}/select with fetch; every type comes from schema.d.ts,
// generated from openapi.json by openapi-typescript (npm run generate).
import type { components, operations } from "./schema.js";

type Select = operations["selection-select"];
export type SelectRequest = Select["requestBody"]["content"]["application/json"];
export type PoolSelection = Select["responses"][200]["content"]["application/json"];
export type ErrorBody = components["schemas"]["ErrorBody"];

/** mmdshot answered with its one error body. */
export class MmdshotError extends Error {
  constructor(
    readonly status: number,
    readonly body: ErrorBody,
  ) {
    super(`${status} ${body.error.type}: ${body.error.message}`);
  }
}

/** The demonstrations mmdshot at `baseUrl` chooses from `pool` for `request`. */
export async function select(
  baseUrl: string,
  pool: Select["parameters"]["path"]["pool"],
  request: SelectRequest,
): Promise<PoolSelection> {
  const response = await fetch(`${baseUrl}/v1/pools/${encodeURIComponent(pool)}/select`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(request),
  });
  const body: unknown = await response.json();
  if (!response.ok) {
    throw new MmdshotError(response.status, body as ErrorBody);
  }
  return body as PoolSelection;
}
