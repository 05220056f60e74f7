/**
 * The kinds of provider a config can name, and the kind a model name implies.
 */
import * as Option from "effect/Option"

export type ProviderType = "anthropic" | "openai" | "litellm"

export const providerTypes: ReadonlyArray<ProviderType> = ["anthropic", "openai", "litellm"]

/** `claude-*`: anthropic; `gpt-*`, `chatgpt-*`, `o1` / `o3` / `o4` (and variants): openai; `prefix/model`: litellm. */
export const inferType = (model: string): Option.Option<ProviderType> => {
  if (model.includes("/")) return Option.some("litellm")
  if (model.startsWith("claude-")) return Option.some("anthropic")
  if (/^(gpt-|chatgpt-)/.test(model) || /^o[134](-|$)/.test(model)) return Option.some("openai")
  return Option.none()
}
