/**
 * `${VAR}` substitution: every string of the document is scanned for `${NAME}` and
 * `${NAME:-default}` (`$${` is a literal `${`); each variable is read through Effect's
 * `ConfigProvider`. A secret place (`api_key`, `headers`) becomes a `Redacted`, and its text is
 * never repeated in a problem. A variable that is not set is a problem at the place that names it.
 */
import * as Config from "effect/Config"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import { isRecord, type Path, type Problem } from "./problem.js"

/** `providers.<id>.api_key` and everything under `providers.<id>.headers`. */
export const isSecretPath = (path: Path): boolean =>
  (path[0] === "providers" && path.length >= 3 && (path[2] === "api_key" || path[2] === "headers")) ||
  // Issue 14: a Redis URL may carry a password.
  (path[0] === "shared_state" && path[1] === "redis_url")

type Segment =
  | { readonly _tag: "Text"; readonly text: string }
  | { readonly _tag: "Var"; readonly name: string; readonly fallback: string | undefined }

const variablePattern = /^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$/s

/** Splits `a ${B} c ${D:-d}` into text and variables; `$${` is a literal `${`. */
const segmentsOf = (text: string, secret: boolean): Either.Either<ReadonlyArray<Segment>, string> => {
  const segments: Array<Segment> = []
  let literal = ""
  let i = 0
  while (i < text.length) {
    if (text.startsWith("$${", i)) {
      literal += "${"
      i += 3
    } else if (text.startsWith("${", i)) {
      const end = text.indexOf("}", i + 2)
      if (end < 0) return Either.left("\"${\" without a closing \"}\"")
      const inner = text.slice(i + 2, end)
      const match = variablePattern.exec(inner)
      if (match === null) {
        // A secret's text is never repeated.
        const what = secret ? "" : `"\${${inner}}" `
        return Either.left(`${what}is not a valid variable reference; write \${NAME} or \${NAME:-default}`)
      }
      if (literal !== "") segments.push({ _tag: "Text", text: literal })
      literal = ""
      segments.push({ _tag: "Var", name: match[1]!, fallback: match[2] })
      i = end + 1
    } else {
      literal += text[i]
      i += 1
    }
  }
  if (literal !== "") segments.push({ _tag: "Text", text: literal })
  return Either.right(segments)
}

export interface Substituted {
  readonly value: unknown
  readonly problems: ReadonlyArray<Problem>
  /** Places whose value could not be read: their Schema problems would only repeat it. */
  readonly failed: ReadonlyArray<Path>
  /** Secret values read, kept to scrub them from any problem text. */
  readonly secrets: ReadonlyArray<string>
}

const readVariable = (name: string, secret: boolean): Effect.Effect<Option.Option<string>> =>
  (secret ? Config.map(Config.redacted(name), Redacted.value) : Config.string(name)).pipe(
    Config.option,
    Effect.orElseSucceed(() => Option.none<string>())
  )

const substituteString = (
  text: string,
  path: Path,
  out: { problems: Array<Problem>; failed: Array<Path>; secrets: Array<string> }
): Effect.Effect<unknown> =>
  Effect.gen(function*() {
    const secret = isSecretPath(path)
    const parsed = segmentsOf(text, secret)
    if (Either.isLeft(parsed)) {
      out.problems.push({ path, message: parsed.left })
      out.failed.push(path)
      return text
    }
    let value = ""
    let ok = true
    for (const segment of parsed.right) {
      if (segment._tag === "Text") {
        value += segment.text
        continue
      }
      const read = yield* readVariable(segment.name, secret)
      if (Option.isSome(read) && read.value !== "") {
        value += read.value
      } else if (segment.fallback !== undefined) {
        value += segment.fallback
      } else if (Option.isSome(read) && !secret) {
        // set but empty: an empty string is a value
      } else {
        ok = false
        out.problems.push({
          path,
          message: `environment variable ${segment.name} is ${Option.isSome(read) ? "empty" : "not set"}`
        })
      }
    }
    if (!ok) {
      out.failed.push(path)
      return undefined
    }
    if (secret) {
      out.secrets.push(value)
      return Redacted.make(value)
    }
    return value
  })

export const substitute = (document: unknown): Effect.Effect<Substituted> =>
  Effect.gen(function*() {
    const out = { problems: [] as Array<Problem>, failed: [] as Array<Path>, secrets: [] as Array<string> }
    const walk = (node: unknown, path: Path): Effect.Effect<unknown> => {
      if (typeof node === "string") return substituteString(node, path, out)
      if (Array.isArray(node)) return Effect.forEach(node, (item, i) => walk(item, [...path, i]))
      if (isRecord(node)) {
        return Effect.map(
          Effect.forEach(Object.entries(node), ([key, value]) =>
            Effect.map(walk(value, [...path, key]), (v) => [key, v])),
          (entries) =>
            Object.fromEntries(entries.filter(([, v]) => v !== undefined))
        )
      }
      return Effect.succeed(node)
    }
    const value = yield* walk(document, [])
    return { value, ...out }
  })
