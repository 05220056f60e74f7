/**
 * The registry's usage summary as a readable table: a row per provider, a row per model under it,
 * and the total.
 */
import type * as Usage from "../../Usage.js"

const usd = (n: number): string => `$${n.toFixed(6)}`

const row = (label: string, u: Usage.ModelUsage): ReadonlyArray<string> => [
  label,
  String(u.calls),
  String(u.failures),
  String(u.inputTokens),
  String(u.cacheReadTokens),
  String(u.cacheWriteTokens),
  String(u.outputTokens),
  usd(u.costUsd),
  String(u.unpricedCalls),
  String(u.unmeteredCalls)
]

/** One provider's row and its models' rows. */
export interface Row {
  readonly id: string
  readonly type: string
  readonly usage: Usage.TokenUsage
}

/** The usage of every provider and of each of its models, and the total, as a table. */
export const renderTable = (providers: ReadonlyArray<Row>, total: Usage.TokenUsage): string => {
  const header = [
    "provider / model",
    "calls",
    "failures",
    "input",
    "cache read",
    "cache write",
    "output",
    "cost",
    "unpriced",
    "unmetered"
  ]
  const lines: Array<ReadonlyArray<string>> = []
  for (const provider of providers) {
    lines.push(row(`${provider.id} (${provider.type})`, provider.usage))
    for (const [model, usage] of Object.entries(provider.usage.byModel)) lines.push(row(`  ${model}`, usage))
  }
  lines.push(row("total", total))
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)))
  const render = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!)).join("  ").trimEnd()
  const rule = widths.map((w) => "-".repeat(w)).join("  ")
  return [render(header), rule, ...lines.slice(0, -1).map(render), rule, render(lines[lines.length - 1]!)].join("\n")
}
