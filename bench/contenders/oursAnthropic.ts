/** Ours: `Anthropic.layer` (the Anthropic SDK sends, our decoder reads), from its own module. */
import * as Redacted from "effect/Redacted"
import * as Anthropic from "../../src/providers/Anthropic.js"
import * as Wire from "../wire.js"
import { fromLayer, withRetry } from "./ours.js"
import type { Make } from "./types.js"
import { apiKey } from "./types.js"

const layer = (origin: string) =>
  Anthropic.layer({ apiKey: Redacted.make(apiKey), defaultModel: Wire.models.anthropic, baseUrl: origin })

/** `Anthropic.layer`. */
export const bare: Make = async (origin) => fromLayer(layer(origin))

/** `Anthropic.layer` behind `Resilience.layerRetry()`. */
export const retry: Make = async (origin) => fromLayer(await withRetry(layer(origin)))
