/**
 * How a budget guard learns what a call really spent, failed, cut and interrupted calls included:
 * the call recorder (`recorder.ts`) tells the observer of the calling fiber (a `FiberRef`, read
 * once when the call starts) when it settles a call (with the usage the provider reported before
 * it broke) or refuses one before any request. A guard sets its observer around the call it
 * wraps, chained to the observer already there (an agent's guard around a provider's guard), so
 * each hears of every attempt (retries, fallbacks) made inside its call.
 *
 * A `FiberRef` rather than a service in the context: a stream would have to provide a context
 * again on every pull; a guarded stream sets the `FiberRef` when it opens and puts the parent
 * back at its first chunk (no attempt starts after the first event) or when it ends.
 */
import * as FiberRef from "effect/FiberRef"
import type * as Usage from "../../Usage.js"

/** One call as the recorder settled it. */
export interface Settled {
  /** `undefined`: the provider reported no usage (unknown, not zero). */
  readonly usage: Usage.Tokens | undefined
  /** `undefined`: unknown (no usage, or an unpriced model). */
  readonly costUsd: number | undefined
  /**
   * The provider answered the request with an error status before any event (a stream's 429 or
   * 5xx): nothing was generated, so nothing was billed, though no usage was reported.
   */
  readonly refusedByStatus: boolean
}

/** Told of every call settled or refused under it. */
export interface CallObserver {
  readonly settled: (call: Settled) => void
  readonly refused: () => void
}

/** The observer of the current call (a chain: each forwards to its parent), if a guard set one. */
export const currentCallObserver: FiberRef.FiberRef<CallObserver | undefined> = FiberRef.unsafeMake<
  CallObserver | undefined
>(undefined)

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
