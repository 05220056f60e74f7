/**
 * Ours through the registry, as a config file sets it up: one `ProvidersConfig` with an OpenAI,
 * an Anthropic and a LiteLLM provider, `ProviderRegistry.layerFromConfig`, the provider taken
 * with `ProviderRegistry.llm(id)` and wrapped in `Resilience.layerRetry()`; usage is tracked as
 * always and checked by the driver.
 */
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ProviderRegistry from "../../src/ProviderRegistry.js"
import * as ProvidersConfig from "../../src/ProvidersConfig.js"
import * as Wire from "../wire.js"
import { fromLayer, withRetry } from "./ours.js"
import type { Make } from "./types.js"
import { apiKey } from "./types.js"

const config = (origin: string) =>
  ProvidersConfig.decode({
    providers: {
      openai_main: {
        type: "openai",
        api_key: apiKey,
        default_model: Wire.models.openai,
        base_url: `${origin}/v1`,
        max_tokens: Wire.maxTokens
      },
      claude_main: {
        type: "anthropic",
        api_key: apiKey,
        default_model: Wire.models.anthropic,
        base_url: origin,
        max_tokens: Wire.maxTokens
      },
      gateway: {
        type: "litellm",
        api_key: apiKey,
        default_model: `openai/${Wire.models.openai}`,
        base_url: `${origin}/v1`,
        max_tokens: Wire.maxTokens
      }
    }
  }, "bench")

const registered = (origin: string, id: string) =>
  withRetry(
    Layer.unwrapEffect(Effect.map(config(origin), (loaded) =>
      ProviderRegistry.llm(id).pipe(Layer.provide(ProviderRegistry.layerFromConfig(loaded))))).pipe(Layer.orDie)
  )

/** `openai_main` (type `openai`) from the registry, with retry. */
export const openai: Make = async (origin) => fromLayer(await registered(origin, "openai_main"))

/** `claude_main` (type `anthropic`) from the registry, with retry. */
export const anthropic: Make = async (origin) => fromLayer(await registered(origin, "claude_main"))

/** `gateway` (type `litellm`, `openai/gpt-4o`) from the registry, with retry. */
export const litellm: Make = async (origin) => fromLayer(await registered(origin, "gateway"))
