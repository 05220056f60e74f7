/** Ours: `OpenAI.layer` (the `openai` SDK sends, our decoder reads), from its own module. */
import * as Redacted from "effect/Redacted"
import * as OpenAI from "../../src/providers/OpenAI.js"
import * as Wire from "../wire.js"
import { fromLayer, withRetry } from "./ours.js"
import type { Make } from "./types.js"
import { apiKey } from "./types.js"

const layer = (origin: string) =>
  OpenAI.layer({ apiKey: Redacted.make(apiKey), defaultModel: Wire.models.openai, baseUrl: `${origin}/v1` })

/** `OpenAI.layer`. */
export const bare: Make = async (origin) => fromLayer(layer(origin))

/** `OpenAI.layer` behind `Resilience.layerRetry()`. */
export const retry: Make = async (origin) => fromLayer(await withRetry(layer(origin)))
