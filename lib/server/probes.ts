// The plain-HTTP probe port: /healthz, /readyz (with the rules hash), /metrics, and --dev helpers.

import type { Metrics } from "./metrics.ts";
import type { SourceStatus } from "../sources/store.ts";

/** What /readyz reports. */
export interface Readiness {
  readonly ready: boolean;
  /** Why not ready, when not. */
  readonly reasons: readonly string[];
  readonly rulesHash: string;
  readonly objects: number;
  readonly rules: number;
  readonly sources: readonly SourceStatus[];
  readonly certificate: {
    readonly notAfter?: string;
    /** The last new pair refused for its validity period (the one above stays in service). */
    readonly rejected?: { readonly notBefore: string; readonly notAfter: string; readonly reason: string };
  };
}

/** Dependencies of the probe handler. */
export interface ProbeDeps {
  readonly metrics: Metrics;
  readonly readiness: () => Readiness;
  /** Extra GET routes (the --dev CA and sample review). */
  readonly extra?: Readonly<Record<string, () => Response>>;
}

/** Creates the probe handler. */
export function createProbeHandler(deps: ProbeDeps): (request: Request) => Promise<Response> {
  return async (request) => {
    const path = new URL(request.url).pathname;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed\n", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    switch (path) {
      case "/healthz":
      case "/livez":
        return new Response("ok\n");
      case "/readyz": {
        const readiness = deps.readiness();
        return new Response(JSON.stringify(readiness, null, 2) + "\n", {
          status: readiness.ready ? 200 : 503,
          headers: { "content-type": "application/json" },
        });
      }
      case "/metrics":
        return new Response(await deps.metrics.registry.metrics(), {
          headers: { "content-type": deps.metrics.registry.contentType },
        });
      default: {
        const extra = deps.extra?.[path];
        return extra === undefined ? new Response(`not found: ${path}\n`, { status: 404 }) : extra();
      }
    }
  };
}
