/**
 * A problem of a configuration: the place it is at (a path of keys and indices in the document)
 * and what is wrong there; and the small readers of raw document values that the Schema, the
 * checks and the rendering share.
 */
import * as Redacted from "effect/Redacted"

/** A place in the document: keys of mappings and indices of lists, from the top. */
export type Path = ReadonlyArray<PropertyKey>

/** One problem, at a place of the document (the empty path: the document itself). */
export interface Problem {
  readonly path: Path
  readonly message: string
}

/** `providers.claude_main.fallbacks[1]` */
export const renderPath = (path: Path): string =>
  path.map((key, i) => typeof key === "number" ? `[${key}]` : i === 0 ? String(key) : `.${String(key)}`).join("")

export const startsWith = (path: Path, prefix: Path): boolean =>
  prefix.length <= path.length && prefix.every((key, i) => path[i] === key)

/** A mapping of the document (not a list, not a secret). */
export const isRecord = (u: unknown): u is Record<string, unknown> =>
  typeof u === "object" && u !== null && !Array.isArray(u) && !Redacted.isRedacted(u)

/** A value in words, for `expected X, got <this>`; never a secret's text. */
export const describe = (u: unknown): string => {
  if (u === null || u === undefined) return "an empty value"
  if (Array.isArray(u)) return "a list"
  if (Redacted.isRedacted(u)) return "a secret"
  if (typeof u === "object") return "a mapping"
  if (typeof u === "string") return JSON.stringify(u.length > 80 ? `${u.slice(0, 77)}...` : u)
  return String(u)
}

/** `true` / `"true"`, `false` / `"false"`, or `undefined` for anything else. */
export const onOff = (input: unknown): boolean | undefined =>
  input === true || input === "true" ? true : input === false || input === "false" ? false : undefined
