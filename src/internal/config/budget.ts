/**
 * The checks of the budget fields that span more than one field: an agent's `budget` and a
 * `budgets.scopes` entry for the same scope (the agent's id) cannot both be set, and a limit with
 * neither `usd` nor `tokens` limits nothing.
 */
import { isRecord, type Path, type Problem } from "./problem.js"

const emptyLimit = (raw: unknown, path: Path, problems: Array<Problem>): void => {
  if (isRecord(raw) && raw.usd === undefined && raw.tokens === undefined) {
    problems.push({ path, message: "set at least one of usd, tokens" })
  }
}

/** The budget problems of a document (before its Schema; shapes the Schema refuses are skipped). */
export const budgetChecks = (document: Record<string, unknown>): ReadonlyArray<Problem> => {
  const problems: Array<Problem> = []
  const providers = isRecord(document.providers) ? document.providers : {}
  const agents = isRecord(document.agents) ? document.agents : {}
  const budgets = isRecord(document.budgets) ? document.budgets : {}
  const scopes = isRecord(budgets.scopes) ? budgets.scopes : {}
  for (const [id, raw] of Object.entries(providers)) {
    if (isRecord(raw)) emptyLimit(raw.budget, ["providers", id, "budget"], problems)
  }
  for (const [id, raw] of Object.entries(agents)) {
    if (!isRecord(raw) || raw.budget === undefined) continue
    emptyLimit(raw.budget, ["agents", id, "budget"], problems)
    if (Object.hasOwn(scopes, id)) {
      problems.push({
        path: ["agents", id, "budget"],
        message: `agent ${id}'s budget is also set as budgets.scopes.${id}; set it in one place`
      })
    }
  }
  emptyLimit(budgets.total, ["budgets", "total"], problems)
  for (const [id, raw] of Object.entries(scopes)) emptyLimit(raw, ["budgets", "scopes", id], problems)
  return problems
}
