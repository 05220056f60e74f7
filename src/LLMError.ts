/**
 * The tagged errors every LLM call can fail with, and the one predicate retry code uses.
 *
 * @example
 * ```ts
 * import { Effect } from "effect"
 * import { LLM, LLMError } from "@orchestify/providers"
 *
 * const program = LLM.complete({ messages: [] }).pipe(
 *   Effect.catchTag("RateLimitError", (e) => Effect.logWarning(`rate limited by ${e.provider}`)),
 *   Effect.catchIf(LLMError.isRetryable, () => Effect.void)
 * )
 * ```
 *
 * @since 0.1.0
 */
import type * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"

/**
 * The brand every `LLMError` carries on its prototype, so a user's own error with the same
 * `_tag` (say their own `TimeoutError`) is never taken for one of ours.
 *
 * @since 0.1.0
 * @category Symbols
 */
export const TypeId: unique symbol = Symbol.for("@orchestify/providers/LLMError")

/**
 * @since 0.1.0
 * @category Symbols
 */
export type TypeId = typeof TypeId

const common = {
  provider: Schema.String,
  message: Schema.String,
  status: Schema.optional(Schema.Number),
  requestId: Schema.optional(Schema.String)
}

/**
 * Rate-limit headers the provider sent with a 429 (Anthropic `anthropic-ratelimit-*`, OpenAI
 * `x-ratelimit-*`), verbatim.
 *
 * @since 0.1.0
 * @category Models
 */
export const RateLimitHeaders = Schema.Record({ key: Schema.String, value: Schema.String })

/**
 * The provider's own verdict on retrying (its `x-should-retry: false`), when it gave one: an
 * error of a retryable kind that it says will not succeed again is not retryable.
 */
const retryable = Schema.optional(Schema.Boolean)

/**
 * A 429 rate limit. `retryAfter` comes from `retry-after-ms`, else `retry-after` (seconds or an
 * HTTP date). Retryable, unless the provider said not to retry (`retryable: false`).
 *
 * @since 0.1.0
 * @category Errors
 */
export class RateLimitError
  extends Schema.TaggedError<RateLimitError>("@orchestify/providers/LLMError/RateLimitError")("RateLimitError", {
    ...common,
    retryAfter: Schema.Option(Schema.Duration),
    rateLimits: Schema.optional(RateLimitHeaders),
    retryable
  })
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return this.retryable ?? true
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * Out of credit or quota (OpenAI `insufficient_quota`, HTTP 402 billing errors). Not retryable.
 *
 * @since 0.1.0
 * @category Errors
 */
export class QuotaExceededError
  extends Schema.TaggedError<QuotaExceededError>("@orchestify/providers/LLMError/QuotaExceededError")(
    "QuotaExceededError",
    common
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * The provider is failing or overloaded (500, 502, 503, 504, 529, an `error` event mid-stream).
 * `retryAfter` is the wait it asked for (`retry-after-ms` / `retry-after` on a 503 or 529).
 * Retryable, unless the provider said not to retry (`x-should-retry: false`) or the stream's error
 * event was of a kind nothing is known about (`retryable: false`).
 *
 * @since 0.1.0
 * @category Errors
 */
export class ProviderUnavailableError
  extends Schema.TaggedError<ProviderUnavailableError>("@orchestify/providers/LLMError/ProviderUnavailableError")(
    "ProviderUnavailableError",
    {
      ...common,
      retryAfter: Schema.optional(Schema.Duration),
      retryable
    }
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return this.retryable ?? true
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * The connection failed: refused, reset, DNS, or the socket closed before the reply was complete.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ConnectionError
  extends Schema.TaggedError<ConnectionError>("@orchestify/providers/LLMError/ConnectionError")(
    "ConnectionError",
    common
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return true
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * No answer within the configured timeout.
 *
 * @since 0.1.0
 * @category Errors
 */
export class TimeoutError
  extends Schema.TaggedError<TimeoutError>("@orchestify/providers/LLMError/TimeoutError")("TimeoutError", {
    ...common,
    timeout: Schema.optional(Schema.Duration),
    retryable
  })
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return this.retryable ?? true
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * The API key was refused (401, 403).
 *
 * @since 0.1.0
 * @category Errors
 */
export class AuthenticationError
  extends Schema.TaggedError<AuthenticationError>("@orchestify/providers/LLMError/AuthenticationError")(
    "AuthenticationError",
    common
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * The prompt does not fit the model's context window.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ContextLengthError
  extends Schema.TaggedError<ContextLengthError>("@orchestify/providers/LLMError/ContextLengthError")(
    "ContextLengthError",
    common
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * The provider refused the content.
 *
 * @since 0.1.0
 * @category Errors
 */
export class ContentPolicyError
  extends Schema.TaggedError<ContentPolicyError>("@orchestify/providers/LLMError/ContentPolicyError")(
    "ContentPolicyError",
    common
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * Any other rejected request (400, 404, 413, 422), or a model the provider cannot serve.
 *
 * @since 0.1.0
 * @category Errors
 */
export class InvalidRequestError
  extends Schema.TaggedError<InvalidRequestError>("@orchestify/providers/LLMError/InvalidRequestError")(
    "InvalidRequestError",
    common
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * A reply that could not be decoded. Never reported as a connection failure.
 *
 * @since 0.1.0
 * @category Errors
 */
export class MalformedResponseError
  extends Schema.TaggedError<MalformedResponseError>("@orchestify/providers/LLMError/MalformedResponseError")(
    "MalformedResponseError",
    common
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * A budget guard refused the call before any request was sent.
 *
 * @since 0.1.0
 * @category Errors
 */
export class BudgetExceededError
  extends Schema.TaggedError<BudgetExceededError>("@orchestify/providers/LLMError/BudgetExceededError")(
    "BudgetExceededError",
    {
      ...common,
      limit: Schema.optional(Schema.Number),
      spent: Schema.optional(Schema.Number)
    }
  )
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return false
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * A circuit breaker refused the call; it will let a trial call through after `retryAfter`.
 *
 * @since 0.1.0
 * @category Errors
 */
export class CircuitOpenError
  extends Schema.TaggedError<CircuitOpenError>("@orchestify/providers/LLMError/CircuitOpenError")("CircuitOpenError", {
    ...common,
    retryAfter: Schema.Duration
  })
{
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return true
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * The shared state store (`SharedState.layerRedis`: Redis or Valkey) did not answer within its
 * timeout, or could not be reached. Retryable: the store may be back on the next call. Budgets
 * refuse with it (unless configured `on_unavailable: local`); rate limits and breakers fall back
 * to local state instead of failing.
 *
 * @since 0.1.0
 * @category Errors
 */
export class SharedStateUnavailableError extends Schema.TaggedError<SharedStateUnavailableError>(
  "@orchestify/providers/LLMError/SharedStateUnavailableError"
)("SharedStateUnavailableError", {
  ...common,
  /** The store operation that failed (`"limiter.admit"`, ...). */
  operation: Schema.optional(Schema.String)
}) {
  /** @since 0.1.0 */
  get isRetryable(): boolean {
    return true
  }
  /** @since 0.1.0 */
  get [TypeId](): TypeId {
    return TypeId
  }
}

/**
 * Every way an LLM call can fail, as a Schema (for serialising errors across boundaries).
 *
 * @since 0.1.0
 * @category Errors
 */
export const LLMError = Schema.Union(
  RateLimitError,
  QuotaExceededError,
  ProviderUnavailableError,
  ConnectionError,
  TimeoutError,
  AuthenticationError,
  ContextLengthError,
  ContentPolicyError,
  InvalidRequestError,
  MalformedResponseError,
  BudgetExceededError,
  CircuitOpenError,
  SharedStateUnavailableError
)

/**
 * Every way an LLM call can fail.
 *
 * @since 0.1.0
 * @category Errors
 */
export type LLMError = typeof LLMError.Type

/**
 * The tag of every `LLMError`.
 *
 * @since 0.1.0
 * @category Models
 */
export type Tag = LLMError["_tag"]

const tags: ReadonlySet<string> = new Set<Tag>([
  "RateLimitError",
  "QuotaExceededError",
  "ProviderUnavailableError",
  "ConnectionError",
  "TimeoutError",
  "AuthenticationError",
  "ContextLengthError",
  "ContentPolicyError",
  "InvalidRequestError",
  "MalformedResponseError",
  "BudgetExceededError",
  "CircuitOpenError",
  "SharedStateUnavailableError"
])

/**
 * Whether a value is one of the `LLMError`s: it carries the {@link TypeId} brand, so an error of
 * your own that happens to share a tag is not taken for one of ours.
 *
 * @example
 * ```ts
 * import { Schema } from "effect"
 * import { LLMError } from "@orchestify/providers"
 *
 * class TimeoutError extends Schema.TaggedError<TimeoutError>()("TimeoutError", {}) {}
 *
 * LLMError.isLLMError(new TimeoutError()) // false: same tag, not ours
 * LLMError.isLLMError(new LLMError.TimeoutError({ provider: "anthropic", message: "late" })) // true
 * ```
 *
 * @since 0.1.0
 * @category Guards
 */
export const isLLMError = (u: unknown): u is LLMError =>
  Predicate.hasProperty(u, TypeId) && Predicate.hasProperty(u, "_tag") && typeof u._tag === "string" && tags.has(u._tag)

/**
 * Whether retrying the same call may succeed: the one predicate retry code uses. Anything that is
 * not one of our `LLMError`s (see {@link isLLMError}) is not retryable.
 *
 * @since 0.1.0
 * @category Guards
 */
export const isRetryable: {
  (u: unknown): boolean
  (error: LLMError): boolean
} = (u: unknown): boolean => isLLMError(u) && u.isRetryable

/**
 * How long the provider asked us to wait before the next call, if it said.
 *
 * @since 0.1.0
 * @category Getters
 */
export const retryAfter = (error: LLMError): Option.Option<Duration.Duration> => {
  switch (error._tag) {
    case "RateLimitError":
      return error.retryAfter
    case "CircuitOpenError":
      return Option.some(error.retryAfter)
    case "ProviderUnavailableError":
      return Option.fromNullable(error.retryAfter)
    default:
      return Option.none()
  }
}
