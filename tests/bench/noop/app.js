// The JavaScript no-op of flowhost-bench's langs mode: returns its input.
export function run(input) {
  return input;
}
