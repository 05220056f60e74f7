/**
 * The budget scope of the current call, for guards that name none: the registry runs an agent's
 * calls with the agent's id here, so the guard of its provider (and of its fallbacks) reserves on
 * the agent's scope too, in the same atomic reservation as the total and the provider.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as LLM from "../../LLM.js"

/** The scope calls made here count against. */
export class CurrentBudgetScope extends Context.Tag("@orchestify/providers/internal/CurrentBudgetScope")<
  CurrentBudgetScope,
  string
>() {}

/** An `LLM` whose calls run in the budget scope `scope`. */
export const withScope = (llm: LLM.Service, scope: string): LLM.Service => ({
  ...llm,
  complete: (request) => Effect.provideService(llm.complete(request), CurrentBudgetScope, scope),
  stream: (request) => Stream.provideService(llm.stream(request), CurrentBudgetScope, scope)
})
