/**
 * A connection pool owned by one provider: the SDKs' `fetch` goes through it, and closing the
 * provider's scope destroys it, so no keep-alive socket outlives the provider (the global pool
 * would keep idle sockets open for seconds after a registry closed). Its own timers are off:
 * the provider's `timeout` is enforced by the provider (`undici`'s defaults would cut any reply
 * whose headers or next bytes take longer than 5 minutes, below the default `timeout` of 10).
 */
import * as Effect from "effect/Effect"
import type * as Scope from "effect/Scope"
import { Agent, fetch as undiciFetch } from "undici"

/** A `fetch` bound to a pool that lives as long as the current scope. */
export const scopedFetch: Effect.Effect<typeof globalThis.fetch, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => new Agent({ headersTimeout: 0, bodyTimeout: 0 })),
    (agent) => Effect.promise(() => agent.destroy().catch(() => undefined))
  ),
  (agent) =>
    ((input: any, init?: any) =>
      undiciFetch(input, init === undefined ? { dispatcher: agent } : { ...init, dispatcher: agent })) as any
)
