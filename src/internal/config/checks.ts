/**
 * The checks of a configuration that span fields, made on the document as written (after
 * `${VAR}` substitution), so that they are reported in the same round as the Schema's problems.
 */
import * as Option from "effect/Option"
import { budgetChecks } from "./budget.js"
import { isRecord, onOff, type Path, type Problem, startsWith } from "./problem.js"
import { inferType, type ProviderType, providerTypes } from "./providerType.js"

const article = (type: ProviderType): string => type === "litellm" ? "a litellm" : `an ${type}`

/** A provider as far as the document could be read: the registry's checks look at it in the same round. */
export interface Outline {
  readonly id: string
  readonly type: ProviderType
  readonly defaultModel?: string | undefined
  readonly baseUrl?: string | undefined
}

/** What {@link crossChecks} found: its problems, and an outline of each provider whose type is known. */
export interface Checked {
  readonly problems: ReadonlyArray<Problem>
  readonly outlines: ReadonlyArray<Outline>
}

/**
 * The checks that span fields, on the document after substitution (`failed`: the places whose
 * variables could not be read, already reported): each provider's type (written, or inferred from
 * `default_model`), the fields its type requires or does not take, agents naming defined providers,
 * and the resilience settings (fallbacks defined, not the provider itself, listed once, no cycles).
 */
export const crossChecks = (document: unknown, failed: ReadonlyArray<Path>): Checked => {
  if (!isRecord(document)) return { problems: [], outlines: [] }
  const problems: Array<Problem> = []
  const outlines: Array<Outline> = []
  const providers = isRecord(document.providers) ? document.providers : {}
  const types = new Map<string, ProviderType>()
  const hasFailed = (path: Path) => failed.some((f) => startsWith(path, f) || startsWith(f, path))

  if (isRecord(document.providers) && Object.keys(providers).length === 0) {
    problems.push({ path: ["providers"], message: "define at least one provider" })
  }

  for (const [id, raw] of Object.entries(providers)) {
    if (!isRecord(raw)) continue
    const at = (key: string): Path => ["providers", id, key]
    const model = typeof raw.default_model === "string" ? raw.default_model : undefined
    let type: ProviderType | undefined
    if (raw.type === undefined) {
      if (raw.default_model === undefined && !hasFailed(at("default_model"))) {
        problems.push({
          path: at("type"),
          message: "is required when default_model is not set; write anthropic, openai or litellm"
        })
      } else if (model !== undefined) {
        type = Option.getOrUndefined(inferType(model))
        if (type === undefined) {
          problems.push({
            path: at("type"),
            message: `cannot infer the provider type from default_model "${model}"; ` +
              "write type: anthropic, openai or litellm"
          })
        }
      }
    } else if (typeof raw.type === "string" && (providerTypes as ReadonlyArray<string>).includes(raw.type)) {
      type = raw.type as ProviderType
    }
    if (type === undefined) continue
    types.set(id, type)
    outlines.push({
      id,
      type,
      ...(model === undefined ? {} : { defaultModel: model }),
      ...(typeof raw.base_url === "string" ? { baseUrl: raw.base_url } : {})
    })
    if (type !== "litellm" && raw.api_key === undefined && !hasFailed(at("api_key"))) {
      const variable = type === "anthropic" ? "ANTHROPIC_API_KEY" : "OPENAI_API_KEY"
      problems.push({
        path: at("api_key"),
        message: `is required for ${article(type)} provider (for example api_key: \${${variable}})`
      })
    }
    if (type === "anthropic" && model !== undefined && !model.startsWith("claude-")) {
      problems.push({
        path: at("default_model"),
        message: `"${model}" is not a Claude model; an anthropic provider serves claude-* models`
      })
    }
    if (type === "litellm" && raw.default_model === undefined && !hasFailed(at("default_model"))) {
      problems.push({
        path: at("default_model"),
        message: "is required for a litellm provider (for example azure/gpt-4o, ollama/llama3, groq/llama-3.3-70b)"
      })
    }
    if (type !== "openai") {
      for (const key of ["organization", "project"]) {
        if (raw[key] !== undefined) {
          problems.push({ path: at(key), message: `is not taken by ${article(type)} provider (openai only)` })
        }
      }
    }
    if (type !== "litellm" && raw.api_version !== undefined) {
      problems.push({ path: at("api_version"), message: `is not taken by ${article(type)} provider (litellm only)` })
    }
  }

  const agents = isRecord(document.agents) ? document.agents : {}
  const defined = Object.keys(providers)
  for (const [id, raw] of Object.entries(agents)) {
    if (!isRecord(raw) || typeof raw.provider !== "string" || raw.provider === "") continue
    if (!Object.hasOwn(providers, raw.provider)) {
      problems.push({
        path: ["agents", id, "provider"],
        message: `agent ${id} names provider "${raw.provider}", which is not defined; ` +
          (defined.length === 0 ? "no providers are defined" : `defined providers: ${defined.join(", ")}`)
      })
      continue
    }
    if (
      types.get(raw.provider) === "anthropic" && typeof raw.model === "string" && raw.model !== "" &&
      !raw.model.startsWith("claude-")
    ) {
      problems.push({
        path: ["agents", id, "model"],
        message: `"${raw.model}" is not a Claude model, and provider ${raw.provider} is an anthropic provider`
      })
    }
  }
  problems.push(...resilienceChecks(providers, agents))
  problems.push(...budgetChecks(document))
  return { problems, outlines }
}

const definedProviders = (providers: Record<string, unknown>): string => {
  const defined = Object.keys(providers)
  return defined.length === 0 ? "no providers are defined" : `defined providers: ${defined.join(", ")}`
}

/**
 * The fallbacks of one provider or agent: each must be another defined provider, listed once.
 * Returns the problems and the valid targets.
 */
const checkFallbacks = (
  at: Path,
  list: unknown,
  providers: Record<string, unknown>,
  own: { readonly id: string; readonly message: string } | undefined
): { readonly problems: ReadonlyArray<Problem>; readonly targets: ReadonlyArray<string> } => {
  const problems: Array<Problem> = []
  const targets: Array<string> = []
  if (!Array.isArray(list)) return { problems, targets }
  const seen = new Set<string>()
  list.forEach((target: unknown, i) => {
    // Anything but a non-empty string is the Schema's to report.
    if (typeof target !== "string" || target === "") return
    const path = [...at, "fallbacks", i]
    if (own !== undefined && target === own.id) {
      problems.push({ path, message: own.message })
    } else if (!Object.hasOwn(providers, target)) {
      problems.push({
        path,
        message: `fallback provider "${target}" is not defined; ${definedProviders(providers)}`
      })
    } else if (seen.has(target)) {
      problems.push({ path, message: `"${target}" is listed twice` })
    } else {
      targets.push(target)
    }
    seen.add(target)
  })
  return { problems, targets }
}

/** The shortest way from `from` back to itself along `edges`, as the ids passed, or `undefined`. */
const cycleThrough = (from: string, edges: ReadonlyMap<string, ReadonlyArray<string>>): Array<string> | undefined => {
  const previous = new Map<string, string>()
  const queue: Array<string> = [from]
  while (queue.length > 0) {
    const node = queue.shift()!
    for (const next of edges.get(node) ?? []) {
      if (next === from) {
        const path = [node]
        while (path[0] !== from) path.unshift(previous.get(path[0]!)!)
        return [...path, from]
      }
      if (!previous.has(next)) {
        previous.set(next, node)
        queue.push(next)
      }
    }
  }
  return undefined
}

/** `retry`, `request_timeout`, `circuit_breaker`, `fallbacks` and `same_model` across fields. */
const resilienceChecks = (providers: Record<string, unknown>, agents: Record<string, unknown>): Array<Problem> => {
  const problems: Array<Problem> = []
  const emptyTimeout = (at: Path, raw: Record<string, unknown>) => {
    if (isRecord(raw.request_timeout) && Object.keys(raw.request_timeout).length === 0) {
      problems.push({ path: [...at, "request_timeout"], message: "set at least one of total, first_event, idle" })
    }
  }
  // Absent or empty; a value that is not a list is the Schema's to report.
  const noFallbacks = (list: unknown) => list === undefined || (Array.isArray(list) && list.length === 0)

  const edges = new Map<string, ReadonlyArray<string>>()
  for (const [id, raw] of Object.entries(providers)) {
    if (!isRecord(raw)) continue
    const at: Path = ["providers", id]
    emptyTimeout(at, raw)
    const checked = checkFallbacks(at, raw.fallbacks, providers, {
      id,
      message: `provider ${id} lists itself; a fallback must be another provider`
    })
    problems.push(...checked.problems)
    edges.set(id, checked.targets)
    if (onOff(raw.same_model) !== undefined && noFallbacks(raw.fallbacks)) {
      problems.push({ path: [...at, "same_model"], message: "has no effect without fallbacks" })
    }
  }

  // The shortest cycle through each provider, each cycle reported once, on its first provider in the file.
  const order = Array.from(edges.keys())
  const reported = new Set<string>()
  for (const id of order) {
    const cycle = cycleThrough(id, edges)
    if (cycle === undefined) continue
    const members = cycle.slice(0, -1)
    const first = members.reduce((a, b) => order.indexOf(a) <= order.indexOf(b) ? a : b)
    const start = members.indexOf(first)
    const canonical = [...members.slice(start), ...members.slice(0, start)].join(" -> ")
    if (reported.has(canonical)) continue
    reported.add(canonical)
    problems.push({
      path: ["providers", id, "fallbacks"],
      message: `the fallbacks form a cycle: ${cycle.join(" -> ")}`
    })
  }

  for (const [id, raw] of Object.entries(agents)) {
    if (!isRecord(raw)) continue
    const at: Path = ["agents", id]
    emptyTimeout(at, raw)
    const provider = typeof raw.provider === "string" && raw.provider !== "" ? raw.provider : undefined
    problems.push(
      ...checkFallbacks(
        at,
        raw.fallbacks,
        providers,
        provider === undefined
          ? undefined
          : { id: provider, message: `"${provider}" is the agent's own provider; a fallback must be another provider` }
      ).problems
    )
    if (onOff(raw.same_model) !== undefined) {
      const own = provider !== undefined && isRecord(providers[provider]) ? providers[provider] : undefined
      if (noFallbacks(raw.fallbacks !== undefined ? raw.fallbacks : own?.fallbacks)) {
        problems.push({
          path: [...at, "same_model"],
          message: provider === undefined
            ? "has no effect without fallbacks"
            : `has no effect without fallbacks (the agent's own, or its provider ${provider}'s)`
        })
      }
    }
  }
  return problems
}
