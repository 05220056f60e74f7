/**
 * Problems in words a person can act on: a Schema issue as `expected <what>, got <actual>` (or
 * the keys a mapping takes), ordered as their places appear in the document, secrets scrubbed,
 * and each rendered with its place: `<file>:<line>:<col>: <path>: <message>` where the YAML node is
 * known, `<path>: <message>` otherwise.
 */
import type * as ParseResult from "effect/ParseResult"
import { describe, isRecord, type Path, type Problem, renderPath } from "./problem.js"

const resilienceKeys = ["retry", "request_timeout", "circuit_breaker", "fallbacks", "same_model"]

/** The fields of a budget limit. */
const limitKeys = ["usd", "tokens", "window"]

const knownKeys = (path: Path): ReadonlyArray<string> | undefined => {
  switch (path.length) {
    case 1:
      return ["providers", "agents", "budgets"]
    case 2:
      return path[0] === "budgets"
        ? ["total", "scopes", "thresholds", "committed_thresholds", "unpriced", "unmetered", "max_reserve_usd"]
        : undefined
    case 3:
      return path[0] === "providers"
        ? [
          "type",
          "api_key",
          "default_model",
          "max_tokens",
          "clamp_max_tokens",
          "base_url",
          "timeout",
          "pricing",
          "organization",
          "project",
          "api_version",
          "headers",
          ...resilienceKeys,
          "budget"
        ]
        : path[0] === "agents"
        ? ["provider", "model", "max_tokens", "temperature", "system", ...resilienceKeys, "budget"]
        : path[0] === "budgets" && path[1] === "total"
        ? limitKeys
        : undefined
    case 4:
      if (path[0] === "budgets" && path[1] === "scopes") return limitKeys
      if (path[0] !== "providers" && path[0] !== "agents") return undefined
      switch (path[2]) {
        case "budget":
          return limitKeys
        case "retry":
          return ["max_retries", "base_delay", "factor", "max_delay", "max_retry_after", "max_elapsed", "jitter"]
        case "request_timeout":
          return ["total", "first_event", "idle"]
        case "circuit_breaker":
          return ["failure_threshold", "reset_timeout", "failure_rate", "minimum_calls", "window"]
        default:
          return undefined
      }
    case 5:
      return path[0] === "providers" && path[2] === "pricing"
        ? ["input", "output", "cache_read", "cache_write", "cache_write_1h", "long_context"]
        : undefined
    case 6:
      return path[0] === "providers" && path[2] === "pricing" && path[4] === "long_context"
        ? ["threshold", "input", "output", "cache_read", "cache_write"]
        : undefined
    default:
      return undefined
  }
}

/** What a place under `pricing` takes, in words. */
const priceExpectation = (path: Path): string | undefined => {
  if (path[0] !== "providers" || path[2] !== "pricing") return undefined
  if (path.length === 3) return "a mapping of model names to prices"
  if (path.length === 4) return "a mapping with input and output prices (USD per million tokens)"
  if (path.length === 5 && path[4] === "long_context") return "a mapping with threshold, input and output"
  if (path[path.length - 1] === "threshold") return "a positive integer (prompt tokens)"
  return "a non-negative number (USD per million tokens)"
}

export const fromSchemaIssue = (issue: ParseResult.ArrayFormatterIssue): Problem => {
  switch (issue._tag) {
    case "Unexpected": {
      const known = knownKeys(issue.path)
      return {
        path: issue.path,
        message: known === undefined ? "unknown field" : `unknown field; expected one of: ${known.join(", ")}`
      }
    }
    case "Missing":
      return { path: issue.path, message: "is required" }
    default: {
      // Messages this module did not write (the price table's) read `Expected X, actual Y`.
      const match = /^Expected (.*), actual (.*)$/s.exec(issue.message)
      if (match === null) return { path: issue.path, message: issue.message }
      return { path: issue.path, message: `expected ${priceExpectation(issue.path) ?? match[1]}, got ${match[2]}` }
    }
  }
}

const valueAt = (document: unknown, path: Path): unknown =>
  path.reduce<unknown>((node, key) => isRecord(node) ? node[String(key)] : undefined, document)

/** A place that should hold a mapping and does not (the Schema's own message would say less). */
export const shapeProblem = (document: unknown, path: Path): Problem | undefined => {
  const value = valueAt(document, path)
  if (isRecord(value)) return undefined
  const what = path.length === 0
    ? "a mapping with providers (and optionally agents)"
    : path.length === 2 && path[0] === "providers"
    ? "a mapping of provider settings"
    : path.length === 2 && path[0] === "agents"
    ? "a mapping of agent settings"
    : undefined
  return what === undefined ? undefined : { path, message: `expected ${what}, got ${describe(value)}` }
}

/** Orders problems as their places appear in the document; unknown places last. */
export const documentOrder = (document: unknown) => {
  const rank = (path: Path): ReadonlyArray<number> => {
    const out: Array<number> = []
    let node: unknown = document
    for (const key of path) {
      if (Array.isArray(node) && typeof key === "number") {
        out.push(key)
        node = node[key]
        continue
      }
      if (!isRecord(node)) break
      const index = Object.keys(node).indexOf(String(key))
      out.push(index < 0 ? Number.MAX_SAFE_INTEGER : index)
      node = node[String(key)]
    }
    return out
  }
  return (a: Problem, b: Problem): number => {
    const ra = rank(a.path)
    const rb = rank(b.path)
    for (let i = 0; i < Math.min(ra.length, rb.length); i++) {
      if (ra[i] !== rb[i]) return ra[i]! - rb[i]!
    }
    return ra.length - rb.length
  }
}

export const scrub = (secrets: ReadonlyArray<string>) => (text: string): string =>
  secrets.reduce((out, secret) => secret.length >= 4 ? out.split(secret).join("<redacted>") : out, text)

/** Where a place of the document was written (`file:line:col`), when that is known. */
export type Locate = (path: Path) => string | undefined

/** One problem as a line of the error: its place in the file (when known), its path, its message. */
export const render = (problem: Problem, locate?: Locate): string => {
  const text = problem.path.length === 0 ? problem.message : `${renderPath(problem.path)}: ${problem.message}`
  const at = locate?.(problem.path)
  return at === undefined ? text : `${at}: ${text}`
}
