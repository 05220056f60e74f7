/**
 * `@orchestify/providers`: an Effect-native LLM provider layer. Every module is re-exported as a
 * namespace: `import { LLM, Message, Anthropic } from "@orchestify/providers"`.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as Anthropic from "./providers/Anthropic.js"
/** @since 0.1.0 */
export * as Budget from "./Budget.js"
/** @since 0.1.0 */
export * as Capabilities from "./Capabilities.js"
/** @since 0.1.0 */
export * as CircuitBreaker from "./CircuitBreaker.js"
/** @since 0.1.0 */
export * as LiteLLM from "./providers/LiteLLM.js"
/** @since 0.1.0 */
export * as LLM from "./LLM.js"
/** @since 0.1.0 */
export * as LLMError from "./LLMError.js"
/** @since 0.1.0 */
export * as Message from "./Message.js"
/** @since 0.1.0 */
export * as OpenAI from "./providers/OpenAI.js"
/** @since 0.1.0 */
export * as Pricing from "./Pricing.js"
/** @since 0.1.0 */
export * as ProviderRegistry from "./ProviderRegistry.js"
/** @since 0.1.0 */
export * as ProvidersConfig from "./ProvidersConfig.js"
/** @since 0.1.0 */
export * as RateLimit from "./RateLimit.js"
/** @since 0.1.0 */
export * as Resilience from "./Resilience.js"
/** @since 0.1.0 */
export * as Response from "./Response.js"
/** @since 0.1.0 */
export * as SharedState from "./SharedState.js"
/** @since 0.1.0 */
export * as Telemetry from "./Telemetry.js"
/** @since 0.1.0 */
export * as Tokens from "./Tokens.js"
/** @since 0.1.0 */
export * as Tool from "./Tool.js"
/** @since 0.1.0 */
export * as Usage from "./Usage.js"
