/**
 * What a model can do: tools, extended thinking or reasoning effort, vision, code execution,
 * prompt caching, and how many tokens it takes and gives.
 *
 * A model name takes the capabilities of its longest matching key (`claude-sonnet-4-5-20250929`
 * is `claude-sonnet-4-5`, `openai/gpt-4o-mini` is `gpt-4o-mini`); a model the table does not
 * know gets the conservative {@link unknown}.
 *
 * @example
 * ```ts
 * import { Capabilities } from "@orchestify/providers"
 *
 * const caps = Capabilities.forModel("claude-sonnet-4-5-20250929")
 * const thinking = caps.thinking ? { budgetTokens: 4_096 } : undefined
 * const maxTokens = Math.min(8_192, caps.maxOutputTokens)
 * ```
 *
 * @since 0.1.0
 */

/**
 * What one model can do.
 *
 * @since 0.1.0
 * @category Models
 */
export interface Capabilities {
  /** Tool (function) calling. */
  readonly tools: boolean
  /** Several tool calls in one turn. */
  readonly parallelToolCalls: boolean
  /** Claude extended thinking (`thinking.budget_tokens`). */
  readonly thinking: boolean
  /** OpenAI reasoning models (o1, o3, o4, gpt-5): `reasoning_effort`. */
  readonly reasoningEffort: boolean
  /** Image input. */
  readonly vision: boolean
  /** The provider's code execution tool. */
  readonly codeExecution: boolean
  /** Prompt caching (Anthropic `cache_control`, OpenAI automatic caching). */
  readonly promptCaching: boolean
  /** Prompt and output tokens the model takes in one call. */
  readonly contextWindow: number
  /** The most tokens the model generates in one call. */
  readonly maxOutputTokens: number
}

/**
 * What a model the table does not know is assumed to do: tools only, 8,192 tokens of context
 * and 4,096 of output.
 *
 * @since 0.1.0
 * @category Models
 */
export const unknown: Capabilities = {
  tools: true,
  parallelToolCalls: false,
  thinking: false,
  reasoningEffort: false,
  vision: false,
  codeExecution: false,
  promptCaching: false,
  contextWindow: 8_192,
  maxOutputTokens: 4_096
}

const claude3: Capabilities = {
  tools: true,
  parallelToolCalls: true,
  thinking: false,
  reasoningEffort: false,
  vision: true,
  codeExecution: false,
  promptCaching: true,
  contextWindow: 200_000,
  maxOutputTokens: 4_096
}

const claude35: Capabilities = { ...claude3, maxOutputTokens: 8_192 }

const claude37: Capabilities = { ...claude3, thinking: true, maxOutputTokens: 64_000 }

const claude4: Capabilities = { ...claude37, codeExecution: true }

const claude4Opus: Capabilities = { ...claude4, maxOutputTokens: 32_000 }

const claude1M: Capabilities = { ...claude4, contextWindow: 1_000_000 }

const gpt4o: Capabilities = {
  tools: true,
  parallelToolCalls: true,
  thinking: false,
  reasoningEffort: false,
  vision: true,
  codeExecution: false,
  promptCaching: true,
  contextWindow: 128_000,
  maxOutputTokens: 16_384
}

const gpt41: Capabilities = { ...gpt4o, contextWindow: 1_047_576, maxOutputTokens: 32_768 }

const oSeries: Capabilities = {
  tools: true,
  parallelToolCalls: false,
  thinking: false,
  reasoningEffort: true,
  vision: true,
  codeExecution: false,
  promptCaching: true,
  contextWindow: 200_000,
  maxOutputTokens: 100_000
}

const gpt5: Capabilities = { ...oSeries, parallelToolCalls: true, contextWindow: 400_000, maxOutputTokens: 128_000 }

/**
 * Capabilities by model key (a model name or the prefix of one).
 *
 * @since 0.1.0
 * @category Models
 */
export const table: Readonly<Record<string, Capabilities>> = {
  "claude-3-opus": claude3,
  "claude-3-sonnet": { ...claude3, promptCaching: false },
  "claude-3-haiku": claude3,
  "claude-3-5-sonnet": claude35,
  "claude-3-5-haiku": claude35,
  "claude-3-7-sonnet": claude37,
  "claude-sonnet-4": claude4,
  "claude-sonnet-4-5": claude1M,
  "claude-sonnet-4-6": claude1M,
  "claude-sonnet-5": claude1M,
  "claude-opus-4": claude4Opus,
  "claude-opus-4-1": claude4Opus,
  "claude-opus-4-5": claude4,
  "claude-opus-4-6": claude4,
  "claude-opus-4-7": claude4,
  "claude-opus-4-8": claude4,
  "claude-haiku-4-5": claude4,
  "gpt-4o": gpt4o,
  "gpt-4o-mini": gpt4o,
  "gpt-4.1": gpt41,
  "gpt-4.1-mini": gpt41,
  "gpt-4.1-nano": gpt41,
  "gpt-4-turbo": { ...gpt4o, promptCaching: false, maxOutputTokens: 4_096 },
  "gpt-4": {
    ...gpt4o,
    parallelToolCalls: false,
    vision: false,
    promptCaching: false,
    contextWindow: 8_192,
    maxOutputTokens: 8_192
  },
  "gpt-3.5-turbo": { ...gpt4o, vision: false, promptCaching: false, contextWindow: 16_385, maxOutputTokens: 4_096 },
  "o1": oSeries,
  "o1-mini": {
    ...oSeries,
    tools: false,
    reasoningEffort: false,
    vision: false,
    contextWindow: 128_000,
    maxOutputTokens: 65_536
  },
  "o1-preview": {
    ...oSeries,
    tools: false,
    reasoningEffort: false,
    vision: false,
    contextWindow: 128_000,
    maxOutputTokens: 32_768
  },
  "o3": oSeries,
  "o3-mini": { ...oSeries, vision: false },
  "o4-mini": oSeries,
  "gpt-5": gpt5,
  "gpt-5-mini": gpt5,
  "gpt-5-nano": gpt5,
  "gpt-5-chat": { ...gpt4o, maxOutputTokens: 16_384 }
}

/** A key matches the name itself, or the name followed by `-`, `@` or `:` and anything (a date, a tag). */
const keyMatches = (name: string, key: string): boolean => {
  if (!name.startsWith(key)) return false
  const rest = name.slice(key.length)
  return rest === "" || rest.startsWith("-") || rest.startsWith("@") || rest.startsWith(":")
}

/**
 * The capabilities of a model: those of its longest matching key in {@link table}, a provider
 * prefix (`openai/`, `anthropic/`) stripped, or {@link unknown}. A key matches the name itself or
 * the name followed by `-`, `@` or `:` and anything, so `gpt-4.1` is not `gpt-4` and `gpt-4o` is not
 * `gpt-4`.
 *
 * @since 0.1.0
 * @category Accessors
 */
export const forModel = (model: string): Capabilities => {
  const name = model.slice(model.lastIndexOf("/") + 1)
  if (Object.hasOwn(table, name)) return table[name] ?? unknown
  let best: string | undefined
  for (const key of Object.keys(table)) {
    if ((best === undefined || key.length > best.length) && keyMatches(name, key)) best = key
  }
  return (best === undefined ? undefined : table[best]) ?? unknown
}
