/**
 * The registry's lifetime as its providers see it: once the registry has closed (`closed` is
 * done), a call fails with `released` before it starts, and a call still running ends with it.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type * as LLM from "../../LLM.js"
import * as LLMError from "../../LLMError.js"

/** The error of a call on a provider whose registry has closed (not retryable). */
export const released = (id: string) =>
  new LLMError.InvalidRequestError({
    provider: id,
    message: `${id}: this provider was released when its ProviderRegistry closed`
  })

/** How the providers of one registry end with it. */
export interface Lifetime {
  /**
   * A built-in provider's calls end when it is released (its connection pool is destroyed with
   * it, which cuts every request in flight): once the registry has closed, a call fails with
   * `released` before it starts, and so does one cut by the release. Nothing runs beside the call.
   */
  readonly guardBuiltIn: (id: string, llm: LLM.Service) => LLM.Service
  /** Any other provider's calls still running when the registry closes are ended by the close. */
  readonly guardRacing: (id: string, llm: LLM.Service) => LLM.Service
}

/** The {@link Lifetime} of a registry that closes when `closed` is done. */
export const make = (closed: Deferred.Deferred<void>): Lifetime => {
  const isClosed = Deferred.isDone(closed)
  const whenReleased = <A, R>(id: string) => (error: LLMError.LLMError): Effect.Effect<A, LLMError.LLMError, R> =>
    Effect.flatMap(isClosed, (done) => Effect.fail(done ? released(id) : error))

  const guardBuiltIn = (id: string, llm: LLM.Service): LLM.Service => ({
    ...llm,
    complete: (request) =>
      Effect.flatMap(
        isClosed,
        (done) => done ? Effect.fail(released(id)) : Effect.catchAll(llm.complete(request), whenReleased(id))
      ),
    stream: (request) =>
      Stream.unwrap(Effect.map(
        isClosed,
        (done) => done ? Stream.fail(released(id)) : Stream.catchAll(llm.stream(request), whenReleased(id))
      ))
  })

  const guardRacing = (id: string, llm: LLM.Service): LLM.Service => {
    const whenClosed = Effect.zipRight(Deferred.await(closed), Effect.fail(released(id)))
    return {
      ...llm,
      complete: (request) =>
        Effect.flatMap(
          isClosed,
          (done) => done ? Effect.fail(released(id)) : Effect.raceFirst(llm.complete(request), whenClosed)
        ),
      stream: (request) =>
        Stream.unwrap(Effect.map(
          isClosed,
          (done) => done ? Stream.fail(released(id)) : Stream.interruptWhen(llm.stream(request), whenClosed)
        ))
    }
  }

  return { guardBuiltIn, guardRacing }
}
