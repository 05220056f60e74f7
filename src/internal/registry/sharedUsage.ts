/**
 * The registry's shared usage (issue 14): when the registry has a shared state (the config's
 * `shared_state` Redis, else a `SharedState` in context), each provider's settled replies are
 * added to `SharedState.usage`, and the registry's totals read from there.
 */
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as LLM from "../../LLM.js"
import * as SharedState from "../../SharedState.js"
import type * as Usage from "../../Usage.js"

/** Adds each settled reply of `llm` (complete, or a stream's `Finish`) to the shared usage. */
export const record = (llm: LLM.Service, usage: SharedState.UsageStore): LLM.Service => {
  const provider = llm.providerId
  const add = (reply: {
    readonly model: string
    readonly usage: Usage.Tokens
    readonly costUsd: number | undefined
    readonly usageUnknown?: true
  }) =>
    usage.add(SharedState.usageEntry(provider, {
      model: reply.model,
      tokens: reply.usageUnknown === true ? undefined : reply.usage,
      costUsd: reply.usageUnknown === true ? undefined : reply.costUsd,
      failed: false
    }))
  return {
    ...llm,
    complete: (request) => Effect.tap(llm.complete(request), add),
    stream: (request) => Stream.tap(llm.stream(request), (event) => event._tag === "Finish" ? add(event) : Effect.void)
  }
}
