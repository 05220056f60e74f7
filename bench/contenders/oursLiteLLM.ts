/** Ours: `LiteLLM.layer` with `openai/gpt-4o` and a base URL, over `FetchHttpClient`, from its own module. */
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as LiteLLM from "../../src/providers/LiteLLM.js"
import * as Wire from "../wire.js"
import { fromLayer, withRetry } from "./ours.js"
import type { Make } from "./types.js"
import { apiKey } from "./types.js"

const layer = (origin: string) =>
  LiteLLM.layer({
    apiKey: Redacted.make(apiKey),
    defaultModel: `openai/${Wire.models.openai}`,
    baseUrl: `${origin}/v1`
  }).pipe(Layer.provide(FetchHttpClient.layer))

/** `LiteLLM.layer` over `FetchHttpClient`. */
export const bare: Make = async (origin) => fromLayer(layer(origin))

/** `LiteLLM.layer` behind `Resilience.layerRetry()`. */
export const retry: Make = async (origin) => fromLayer(await withRetry(layer(origin)))
