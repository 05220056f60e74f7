/**
 * The contenders, by id. Each is loaded with a dynamic `import` so a client process loads only
 * its own libraries (and its start-up time is its own).
 */
import type { Make } from "./types.js"

/** Which vendor's wire format a contender speaks, for the ratios against the same-vendor SDK. */
export type Vendor = "openai" | "anthropic"

/** Who wrote it. */
export type Family = "fetch" | "sdk" | "ours" | "effect-ai" | "vercel"

export interface Contender {
  readonly id: string
  readonly vendor: Vendor
  readonly family: Family
  readonly description: string
  /** Run by default; the others with `--all` or `--only`. */
  readonly byDefault: boolean
  readonly load: () => Promise<Make>
}

export const all: ReadonlyArray<Contender> = [
  {
    id: "fetch-openai",
    vendor: "openai",
    family: "fetch",
    description: "fetch + minimal SSE parser, Chat Completions",
    byDefault: true,
    load: () => import("./fetch.js").then((m) => m.openai)
  },
  {
    id: "fetch-anthropic",
    vendor: "anthropic",
    family: "fetch",
    description: "fetch + minimal SSE parser, Messages",
    byDefault: true,
    load: () => import("./fetch.js").then((m) => m.anthropic)
  },
  {
    id: "sdk-openai",
    vendor: "openai",
    family: "sdk",
    description: "openai 6 SDK, maxRetries 0",
    byDefault: true,
    load: () => import("./sdkOpenAI.js").then((m) => m.make)
  },
  {
    id: "sdk-anthropic",
    vendor: "anthropic",
    family: "sdk",
    description: "@anthropic-ai/sdk 1.x, maxRetries 0",
    byDefault: true,
    load: () => import("./sdkAnthropic.js").then((m) => m.make)
  },
  {
    id: "ours-openai",
    vendor: "openai",
    family: "ours",
    description: "OpenAI.layer",
    byDefault: true,
    load: () => import("./oursOpenAI.js").then((m) => m.bare)
  },
  {
    id: "ours-anthropic",
    vendor: "anthropic",
    family: "ours",
    description: "Anthropic.layer",
    byDefault: true,
    load: () => import("./oursAnthropic.js").then((m) => m.bare)
  },
  {
    id: "ours-litellm",
    vendor: "openai",
    family: "ours",
    description: "LiteLLM.layer (openai/gpt-4o + baseUrl) over FetchHttpClient",
    byDefault: true,
    load: () => import("./oursLiteLLM.js").then((m) => m.bare)
  },
  {
    id: "ours-openai+retry",
    vendor: "openai",
    family: "ours",
    description: "OpenAI.layer + Resilience.layerRetry()",
    byDefault: false,
    load: () => import("./oursOpenAI.js").then((m) => m.retry)
  },
  {
    id: "ours-anthropic+retry",
    vendor: "anthropic",
    family: "ours",
    description: "Anthropic.layer + Resilience.layerRetry()",
    byDefault: false,
    load: () => import("./oursAnthropic.js").then((m) => m.retry)
  },
  {
    id: "ours-litellm+retry",
    vendor: "openai",
    family: "ours",
    description: "LiteLLM.layer + Resilience.layerRetry()",
    byDefault: false,
    load: () => import("./oursLiteLLM.js").then((m) => m.retry)
  },
  {
    id: "registry-openai+retry",
    vendor: "openai",
    family: "ours",
    description: "ProviderRegistry.layerFromConfig, llm(\"openai_main\") + Resilience.layerRetry()",
    byDefault: true,
    load: () => import("./registry.js").then((m) => m.openai)
  },
  {
    id: "registry-anthropic+retry",
    vendor: "anthropic",
    family: "ours",
    description: "ProviderRegistry.layerFromConfig, llm(\"claude_main\") + Resilience.layerRetry()",
    byDefault: true,
    load: () => import("./registry.js").then((m) => m.anthropic)
  },
  {
    id: "registry-litellm+retry",
    vendor: "openai",
    family: "ours",
    description: "ProviderRegistry.layerFromConfig, llm(\"gateway\") (litellm) + Resilience.layerRetry()",
    byDefault: true,
    load: () => import("./registry.js").then((m) => m.litellm)
  },
  {
    id: "effect-ai-openai",
    vendor: "openai",
    family: "effect-ai",
    description: "@effect/ai 0.37 + @effect/ai-openai 0.41 (Responses API), FetchHttpClient",
    byDefault: true,
    load: () => import("./effectAi.js").then((m) => m.openai)
  },
  {
    id: "effect-ai-anthropic",
    vendor: "anthropic",
    family: "effect-ai",
    description: "@effect/ai 0.37 + @effect/ai-anthropic 0.27, FetchHttpClient",
    byDefault: true,
    load: () => import("./effectAi.js").then((m) => m.anthropic)
  },
  {
    id: "vercel-openai",
    vendor: "openai",
    family: "vercel",
    description: "ai 6 + @ai-sdk/openai 3 (openai.chat)",
    byDefault: true,
    load: () => import("./vercel.js").then((m) => m.openai)
  },
  {
    id: "vercel-anthropic",
    vendor: "anthropic",
    family: "vercel",
    description: "ai 6 + @ai-sdk/anthropic 3",
    byDefault: true,
    load: () => import("./vercel.js").then((m) => m.anthropic)
  }
]

export const byId = (id: string): Contender | undefined => all.find((contender) => contender.id === id)
