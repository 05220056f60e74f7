/**
 * Extra request headers as the providers take them: values plain or `Redacted` (the config keeps
 * every `headers` value `Redacted`, as they often carry credentials). They are unwrapped only where
 * a request is built; every value is scrubbed from error messages, and every name is redacted from
 * `HttpClient` spans.
 *
 * @internal
 */
import * as Redacted from "effect/Redacted"

/** Header values, plain or `Redacted`. */
export type Values = Readonly<Record<string, string | Redacted.Redacted<string>>>

/** The headers with their values unwrapped, for the request only. */
export const plain = (headers: Values | undefined): Record<string, string> | undefined =>
  headers === undefined
    ? undefined
    : Object.fromEntries(
      Object.entries(headers).map(([name, value]) => [name, Redacted.isRedacted(value) ? Redacted.value(value) : value])
    )

/** Every value, as a secret to scrub from messages (plain ones too: a header may carry a key either way). */
export const secrets = (headers: Values | undefined): Array<Redacted.Redacted<string>> =>
  Object.values(headers ?? {}).map((value) => Redacted.isRedacted(value) ? value : Redacted.make(value))

/** The names, lower-cased, as `HttpClient` compares them when it redacts a span's headers. */
export const names = (headers: Values | undefined): Array<string> =>
  Object.keys(headers ?? {}).map((name) => name.toLowerCase())
