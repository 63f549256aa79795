export class FlowError extends Error {
  kind: string;
}
export const tables: { count(table: string, filter?: unknown): number };
export function flow(fn: (input: any) => unknown): (input: string) => string;
