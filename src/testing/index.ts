/**
 * The test kit, `@orchestify/providers/testing`: `MockLLM` for dependency-injected tests and
 * `FakeProviderServer`, a loopback server speaking the providers' wire protocols.
 *
 * @since 0.1.0
 */

/** @since 0.1.0 */
export * as FakeProviderServer from "./FakeProviderServer.js"
/** @since 0.1.0 */
export * as MockLLM from "./MockLLM.js"
