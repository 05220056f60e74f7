/**
 * How a budget guard learns what a call really spent, failed, cut and interrupted calls included:
 * the call recorder (`recorder.ts`) tells the observers in the calling fiber's context when it
 * settles a call (with the usage the provider reported before it broke) or refuses one before any
 * request. A guard provides its observer around the call it wraps, chained to the observers
 * already there (an agent's guard around a provider's guard), so each hears of every attempt
 * (retries, fallbacks) made inside its call.
 */
import * as Context from "effect/Context"
import type * as Usage from "../../Usage.js"

/** One call as the recorder settled it. */
export interface Settled {
  /** `undefined`: the provider reported no usage (unknown, not zero). */
  readonly usage: Usage.Tokens | undefined
  /** `undefined`: unknown (no usage, or an unpriced model). */
  readonly costUsd: number | undefined
}

/** Told of every call settled or refused under it. */
export interface CallObserver {
  readonly settled: (call: Settled) => void
  readonly refused: () => void
}

/** The observers of the current call (a chain: each forwards to its parent). */
export class CurrentCallObserver extends Context.Tag("@orchestify/providers/internal/CallObserver")<
  CurrentCallObserver,
  CallObserver
>() {}

/** An observer that also tells `parent`. */
export const chain = (parent: CallObserver | undefined, observer: CallObserver): CallObserver =>
  parent === undefined ? observer : {
    settled: (call) => {
      observer.settled(call)
      parent.settled(call)
    },
    refused: () => {
      observer.refused()
      parent.refused()
    }
  }
