// The JavaScript no-op of flowhost-bench's langs mode: returns its input, through the SDK.
import { flow } from './flowhost.js';

export const run = flow((input) => input);
