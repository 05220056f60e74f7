/**
 * Error mapping shared by every provider: HTTP status + error body + headers -> one `LLMError`,
 * thrown SDK / fetch errors -> one `LLMError`, mid-stream error events -> one `LLMError`.
 */
import * as Clock from "effect/Clock"
import * as Duration from "effect/Duration"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as LLMError from "../LLMError.js"

/** What every mapper needs to know about the call. */
export interface ErrorContext {
  /** The provider id, named in every error. */
  readonly provider: string
  /** Secrets that must never appear in a message (the API key). */
  readonly secrets?: ReadonlyArray<Redacted.Redacted<string>>
  /** The configured timeout, for `TimeoutError` messages. */
  readonly timeout?: Duration.Duration
  /**
   * The clock an HTTP-date `retry-after` is counted from: the provider's (`Effect.clock` when it
   * was built, so `TestClock` in tests). Default: Effect's live clock.
   */
  readonly clock?: Clock.Clock
}

const liveClock = Clock.make()

/** Headers as a fetch `Headers`, a plain record, or missing. */
export type HeadersLike =
  | { readonly get: (name: string) => string | null }
  | Readonly<Record<string, unknown>>
  | undefined

export const header = (headers: HeadersLike, name: string): string | undefined => {
  if (headers === undefined || headers === null) return undefined
  if (typeof (headers as any).get === "function") {
    const value = (headers as { get: (name: string) => string | null }).get(name)
    return value === null ? undefined : value
  }
  const value = (headers as Record<string, unknown>)[name] ?? (headers as Record<string, unknown>)[name.toLowerCase()]
  return typeof value === "string" ? value : Array.isArray(value) ? value.join(", ") : undefined
}

const headerEntries = (headers: HeadersLike): Array<[string, string]> => {
  if (headers === undefined || headers === null) return []
  if (typeof (headers as any).forEach === "function" && typeof (headers as any).get === "function") {
    const out: Array<[string, string]> = []
    ;(headers as Headers).forEach((value, key) => out.push([key, value]))
    return out
  }
  return Object.entries(headers as Record<string, unknown>).flatMap(([k, v]) =>
    typeof v === "string" ? [[k.toLowerCase(), v] as [string, string]] : []
  )
}

/**
 * `retry-after-ms` (milliseconds) wins over `retry-after` (seconds, or an HTTP date counted from
 * the `clock`'s time).
 */
export const parseRetryAfter = (headers: HeadersLike, clock: Clock.Clock): Option.Option<Duration.Duration> => {
  const ms = header(headers, "retry-after-ms")
  if (ms !== undefined && ms.trim() !== "") {
    const value = Number(ms)
    if (Number.isFinite(value) && value >= 0) return Option.some(Duration.millis(value))
  }
  const ra = header(headers, "retry-after")
  if (ra !== undefined && ra.trim() !== "") {
    const seconds = Number(ra)
    if (Number.isFinite(seconds)) return seconds >= 0 ? Option.some(Duration.seconds(seconds)) : Option.none()
    const date = Date.parse(ra)
    if (!Number.isNaN(date)) return Option.some(Duration.millis(Math.max(0, date - clock.unsafeCurrentTimeMillis())))
  }
  return Option.none()
}

/** The provider's `x-should-retry` (`true` / `false`), when it sent one. */
const shouldRetryOf = (headers: HeadersLike): boolean | undefined => {
  const value = header(headers, "x-should-retry")?.trim().toLowerCase()
  return value === "true" ? true : value === "false" ? false : undefined
}

const rateLimitHeaderPattern = /^(anthropic-ratelimit-|x-ratelimit-)/

/** The provider's rate-limit headers (`x-ratelimit-*`, `anthropic-ratelimit-*`), if it sent any. */
export const rateLimitHeaders = (headers: HeadersLike): Record<string, string> | undefined => {
  const out: Record<string, string> = {}
  let any = false
  for (const [key, value] of headerEntries(headers)) {
    if (rateLimitHeaderPattern.test(key)) {
      out[key] = value
      any = true
    }
  }
  return any ? out : undefined
}

/** Removes every secret from a message. */
export const scrub = (message: string, secrets: ReadonlyArray<Redacted.Redacted<string>> | undefined): string => {
  if (secrets === undefined) return message
  let out = message
  for (const secret of secrets) {
    const value = Redacted.value(secret)
    if (value.length >= 4 && out.includes(value)) out = out.split(value).join("<redacted>")
  }
  return out
}

/** The `{type, code, message}` of an error body in any of the shapes providers send. */
export interface ErrorBody {
  readonly type: string | undefined
  readonly code: string | undefined
  readonly message: string | undefined
}

const str = (u: unknown): string | undefined =>
  typeof u === "string" ? u : typeof u === "number" ? String(u) : undefined

/**
 * Reads an error body: Anthropic `{type: "error", error: {type, message}}`, OpenAI
 * `{error: {message, type, code}}`, the flat `{error: "...", code}` of some compatible servers,
 * an SDK's already-unwrapped `error` object, or a string.
 */
export const readErrorBody = (body: unknown): ErrorBody => {
  if (typeof body === "string") {
    try {
      return readErrorBody(JSON.parse(body))
    } catch {
      return { type: undefined, code: undefined, message: body.length > 0 ? body.slice(0, 500) : undefined }
    }
  }
  if (typeof body !== "object" || body === null) return { type: undefined, code: undefined, message: undefined }
  const b = body as Record<string, unknown>
  const inner = b.error
  if (typeof inner === "object" && inner !== null) {
    const e = inner as Record<string, unknown>
    return { type: str(e.type), code: str(e.code), message: str(e.message) }
  }
  if (typeof inner === "string") {
    return { type: str(b.type), code: str(b.code), message: str(b.message) ?? inner }
  }
  return { type: str(b.type), code: str(b.code), message: str(b.message) ?? str(b.detail) }
}

const contextPattern =
  /context[ _-]?length|context window|prompt is too long|maximum context|too many tokens|input is too long|exceeds the context/i
const policyPattern = /content[ _-]?(policy|filter|management)|safety system|responsible ai/i

const isQuota = (e: ErrorBody) =>
  e.code === "insufficient_quota" || e.type === "insufficient_quota" || e.type === "billing_error" ||
  e.code === "billing_error"

const isContextLength = (e: ErrorBody) =>
  e.code === "context_length_exceeded" || e.type === "context_length_exceeded" ||
  (e.message !== undefined && contextPattern.test(e.message))

const isContentPolicy = (e: ErrorBody) =>
  e.code === "content_policy_violation" || e.code === "content_filter" || e.type === "content_policy_violation" ||
  (e.message !== undefined && policyPattern.test(e.message))

/** Groq: one request over the tokens-per-minute limit, which no wait can let through. */
const tooLargeEver = /request too large/i

const isTooLargeEver = (e: ErrorBody) =>
  e.message !== undefined && tooLargeEver.test(e.message) &&
  (e.code === "rate_limit_exceeded" || e.type === "tokens" || /tokens per (minute|day)|\bTP[MD]\b/i.test(e.message))

const describe = (status: number | undefined, e: ErrorBody, fallback: string): string => {
  // A `code` that only repeats the status says nothing more.
  const kind = e.code !== undefined && e.code !== String(status) ? e.code : e.type
  return [kind, e.message ?? fallback].filter((s) => s !== undefined && s !== "").join(": ")
}

/** Everything known about a failed HTTP exchange. */
export interface HttpFailure {
  readonly status: number
  readonly headers: HeadersLike
  readonly body: unknown
  readonly requestId?: string | undefined
}

const nonEmpty = (s: string | undefined): string | undefined => s === "" ? undefined : s

const requestIdOf = (headers: HeadersLike, given: string | undefined): string | undefined =>
  nonEmpty(given) ?? nonEmpty(header(headers, "request-id")) ?? nonEmpty(header(headers, "x-request-id"))

/**
 * The one error table, for an HTTP failure (`status` set) and for an error event in a stream
 * (`status` unset, unless the event's numeric `code` is an HTTP status). The first row that
 * matches wins; then the provider's `x-should-retry` has the last word on retrying.
 */
const classify = (
  ctx: ErrorContext,
  e: ErrorBody,
  status: number | undefined,
  headers: HeadersLike,
  requestId: string | undefined,
  message: string
): LLMError.LLMError => {
  const is = (...kinds: ReadonlyArray<string>) =>
    (e.type !== undefined && kinds.includes(e.type)) || (e.code !== undefined && kinds.includes(e.code))
  const base = {
    provider: ctx.provider,
    message: scrub(message, ctx.secrets),
    ...(status !== undefined ? { status } : {}),
    ...(requestId !== undefined ? { requestId } : {})
  }
  const verdict = shouldRetryOf(headers)
  const noRetry = verdict === false ? { retryable: false } : {}
  const retryAfter = parseRetryAfter(headers, ctx.clock ?? liveClock)
  const unavailable = (extra: { readonly retryable?: boolean }) =>
    new LLMError.ProviderUnavailableError({
      ...base,
      ...(Option.isSome(retryAfter) ? { retryAfter: retryAfter.value } : {}),
      ...extra
    })
  const row = ((): LLMError.LLMError => {
    if (isQuota(e) || status === 402) return new LLMError.QuotaExceededError(base)
    if (isTooLargeEver(e)) return new LLMError.InvalidRequestError(base)
    if (status === 429 || is("rate_limit_error", "rate_limit_exceeded")) {
      const rateLimits = rateLimitHeaders(headers)
      return new LLMError.RateLimitError({
        ...base,
        retryAfter,
        ...(rateLimits !== undefined ? { rateLimits } : {}),
        ...noRetry
      })
    }
    if (status === 401 || status === 403 || is("authentication_error", "permission_error", "invalid_api_key")) {
      return new LLMError.AuthenticationError(base)
    }
    if (status === 408) return new LLMError.TimeoutError({ ...base, ...noRetry })
    if (
      (status !== undefined && (status >= 500 || status === 409)) ||
      is("overloaded_error", "api_error", "server_error", "timeout_error")
    ) return unavailable(noRetry)
    if (isContextLength(e)) return new LLMError.ContextLengthError(base)
    if (isContentPolicy(e)) return new LLMError.ContentPolicyError(base)
    if (status !== undefined || is("invalid_request_error", "not_found_error", "request_too_large")) {
      return new LLMError.InvalidRequestError(base)
    }
    // An error event of a kind nothing is known about: not retried on a guess.
    return unavailable({ retryable: verdict === true })
  })()
  return verdict === true && !row.isRetryable ? unavailable({}) : row
}

/** Maps one HTTP failure to exactly one row of the error table. */
export const fromHttp = (ctx: ErrorContext, failure: HttpFailure): LLMError.LLMError => {
  const body = readErrorBody(failure.body)
  return classify(
    ctx,
    body,
    failure.status,
    failure.headers,
    requestIdOf(failure.headers, failure.requestId),
    `${ctx.provider}: HTTP ${failure.status} ${describe(failure.status, body, "request failed")}`
  )
}

/**
 * Maps an error event received inside a 200 stream (Anthropic `event: error`, OpenAI-compatible
 * `data: {"error": ...}`, or a 200 JSON body holding an `error`), by the same table as HTTP
 * errors: a numeric `code` that is an HTTP status (vLLM, LiteLLM) counts as the status. A kind
 * nothing is known about is a `ProviderUnavailableError` that is not retryable.
 */
export const fromStreamError = (ctx: ErrorContext, payload: unknown, requestId?: string): LLMError.LLMError => {
  const body = readErrorBody(payload)
  const code = body.code !== undefined && /^[45]\d\d$/.test(body.code) ? Number(body.code) : undefined
  return classify(
    ctx,
    body,
    code,
    undefined,
    requestId,
    `${ctx.provider}: error event in stream: ${describe(code, body, "stream error")}`
  )
}

const errorName = (e: unknown): string => {
  if (typeof e !== "object" || e === null) return ""
  const ctor = (e as { constructor?: { name?: unknown } }).constructor
  return typeof ctor?.name === "string" ? ctor.name : ""
}

const causeChain = (e: unknown): string => {
  const parts: Array<string> = []
  let current: unknown = e
  for (let i = 0; i < 5 && current !== undefined && current !== null; i++) {
    if (current instanceof Error) {
      const code = (current as { code?: unknown }).code
      parts.push(typeof code === "string" ? `${current.message} (${code})` : current.message)
      current = (current as { cause?: unknown }).cause
    } else {
      parts.push(String(current))
      break
    }
  }
  return [...new Set(parts.filter((p) => p !== ""))].join(": ")
}

/**
 * The text of an SDK error made from a body that was not JSON: the SDKs prefix the status
 * (`"400 Missing header"`), and say `"400 status code (no body)"` for an empty body.
 */
const sdkMessage = (message: string, status: number): string | undefined => {
  const text = message.startsWith(`${status} `) ? message.slice(String(status).length + 1) : message
  return text === "" || text === "status code (no body)" ? undefined : text
}

/**
 * Maps anything thrown by an SDK, `fetch` or a body read: SDK `APIError`s with a status go
 * through `fromHttp`; timeouts are `TimeoutError`; a `SyntaxError` (a body that is not JSON) is
 * `MalformedResponseError`; everything else on the wire is a `ConnectionError`.
 */
export const fromThrown = (ctx: ErrorContext, error: unknown): LLMError.LLMError => {
  if (LLMError.isLLMError(error)) return error
  const e = error as { status?: unknown; headers?: HeadersLike; error?: unknown; requestID?: unknown }
  if (typeof e === "object" && e !== null && typeof e.status === "number") {
    return fromHttp(ctx, {
      status: e.status,
      headers: e.headers,
      body: e.error ?? (error instanceof Error ? sdkMessage(error.message, e.status) : undefined),
      requestId: typeof e.requestID === "string" ? e.requestID : undefined
    })
  }
  const name = errorName(error)
  const detail = scrub(causeChain(error), ctx.secrets)
  if (/Timeout/i.test(name) || (error instanceof Error && error.name === "TimeoutError")) return timedOut(ctx)
  if (error instanceof SyntaxError) return malformed(ctx, `reply is not valid JSON: ${detail}`)
  return new LLMError.ConnectionError({
    provider: ctx.provider,
    message: `${ctx.provider}: connection failed: ${detail || "unknown error"}`
  })
}

/** No answer within the configured timeout. */
export const timedOut = (ctx: ErrorContext): LLMError.TimeoutError => {
  const after = ctx.timeout !== undefined ? ` after ${Duration.format(ctx.timeout)}` : ""
  return new LLMError.TimeoutError({
    provider: ctx.provider,
    message: `${ctx.provider}: no answer${after}`,
    ...(ctx.timeout !== undefined ? { timeout: ctx.timeout } : {})
  })
}

/** A reply that cannot be decoded. */
export const malformed = (ctx: ErrorContext, what: string, requestId?: string): LLMError.MalformedResponseError =>
  new LLMError.MalformedResponseError({
    provider: ctx.provider,
    message: scrub(`${ctx.provider}: malformed reply: ${what}`, ctx.secrets),
    ...(requestId !== undefined ? { requestId } : {})
  })

/**
 * A token count read off the wire: missing (`undefined` or `null`) is 0; anything but a finite,
 * non-negative integer (a string, a negative or fractional number) is a malformed reply, never
 * added to a tally (`"0" + 12` would be `"012"`).
 */
export const tokenCount = (
  ctx: ErrorContext,
  field: string,
  value: unknown,
  requestId?: string
): number => {
  if (value === undefined || value === null) return 0
  if (typeof value === "number" && Number.isSafeInteger(value) && value >= 0) return value
  const shown = typeof value === "string" ? JSON.stringify(value) : String(value)
  throw malformed(ctx, `the token count ${field} is ${shown}, not a non-negative integer`, requestId)
}

/** A stream that ended before its terminal event. */
export const truncated = (ctx: ErrorContext, what: string, requestId?: string): LLMError.ConnectionError =>
  new LLMError.ConnectionError({
    provider: ctx.provider,
    message: `${ctx.provider}: the stream ended before ${what}`,
    ...(requestId !== undefined ? { requestId } : {})
  })
