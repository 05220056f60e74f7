/**
 * Error mapping shared by every provider: HTTP status + error body + headers -> one `LLMError`,
 * thrown SDK / fetch errors -> one `LLMError`, mid-stream error events -> one `LLMError`.
 */
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
}

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
 * `retry-after-ms` (milliseconds) wins over `retry-after` (seconds, or an HTTP date relative to
 * `now`).
 */
export const parseRetryAfter = (headers: HeadersLike, now: number = Date.now()): Option.Option<Duration.Duration> => {
  const ms = header(headers, "retry-after-ms")
  if (ms !== undefined) {
    const value = Number(ms)
    if (Number.isFinite(value) && value >= 0) return Option.some(Duration.millis(value))
  }
  const ra = header(headers, "retry-after")
  if (ra !== undefined && ra.trim() !== "") {
    const seconds = Number(ra)
    if (Number.isFinite(seconds)) return seconds >= 0 ? Option.some(Duration.seconds(seconds)) : Option.none()
    const date = Date.parse(ra)
    if (!Number.isNaN(date)) return Option.some(Duration.millis(Math.max(0, date - now)))
  }
  return Option.none()
}

const rateLimitHeaderPattern = /^(anthropic-ratelimit-|x-ratelimit-)/

const rateLimitHeaders = (headers: HeadersLike): Record<string, string> | undefined => {
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

const describe = (status: number | undefined, e: ErrorBody, fallback: string): string => {
  // A `code` that only repeats the status says nothing more.
  const kind = e.code !== undefined && e.code !== String(status) ? e.code : e.type
  const head = status === undefined ? "" : `HTTP ${status}`
  const detail = [kind, e.message ?? fallback].filter((s) => s !== undefined && s !== "").join(": ")
  return head === "" ? detail : `${head} ${detail}`
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

/** Maps one HTTP failure to exactly one row of the error table. */
export const fromHttp = (ctx: ErrorContext, failure: HttpFailure, now: number = Date.now()): LLMError.LLMError => {
  const body = readErrorBody(failure.body)
  const status = failure.status
  const requestId = requestIdOf(failure.headers, failure.requestId)
  const base = {
    provider: ctx.provider,
    message: scrub(`${ctx.provider}: ${describe(status, body, "request failed")}`, ctx.secrets),
    status,
    ...(requestId !== undefined ? { requestId } : {})
  }
  if (isQuota(body) || status === 402) return new LLMError.QuotaExceededError(base)
  if (status === 429 || body.type === "rate_limit_error" || body.code === "rate_limit_exceeded") {
    const rateLimits = rateLimitHeaders(failure.headers)
    return new LLMError.RateLimitError({
      ...base,
      retryAfter: parseRetryAfter(failure.headers, now),
      ...(rateLimits !== undefined ? { rateLimits } : {})
    })
  }
  if (status === 401 || status === 403) return new LLMError.AuthenticationError(base)
  if (status === 408) return new LLMError.TimeoutError(base)
  if (status >= 500 || status === 409 || body.type === "overloaded_error" || body.type === "api_error") {
    return new LLMError.ProviderUnavailableError(base)
  }
  if (isContextLength(body)) return new LLMError.ContextLengthError(base)
  if (isContentPolicy(body)) return new LLMError.ContentPolicyError(base)
  return new LLMError.InvalidRequestError(base)
}

/**
 * Maps an error event received inside a 200 stream (Anthropic `event: error`, OpenAI-compatible
 * `data: {"error": ...}`). Unknown kinds are `ProviderUnavailableError` (retryable before output).
 */
export const fromStreamError = (ctx: ErrorContext, payload: unknown, requestId?: string): LLMError.LLMError => {
  const body = readErrorBody(payload)
  const base = {
    provider: ctx.provider,
    message: scrub(`${ctx.provider}: error event in stream: ${describe(undefined, body, "stream error")}`, ctx.secrets),
    ...(requestId !== undefined ? { requestId } : {})
  }
  if (isQuota(body)) return new LLMError.QuotaExceededError(base)
  if (body.type === "rate_limit_error" || body.code === "rate_limit_exceeded") {
    return new LLMError.RateLimitError({ ...base, retryAfter: Option.none() })
  }
  if (body.type === "authentication_error" || body.type === "permission_error") {
    return new LLMError.AuthenticationError(base)
  }
  if (body.type === "invalid_request_error" && isContextLength(body)) return new LLMError.ContextLengthError(base)
  if (body.type === "invalid_request_error") return new LLMError.InvalidRequestError(base)
  if (isContentPolicy(body)) return new LLMError.ContentPolicyError(base)
  return new LLMError.ProviderUnavailableError(base)
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
      body: e.error ?? (error instanceof Error ? error.message : undefined),
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
