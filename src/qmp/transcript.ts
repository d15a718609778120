/**
 * Test helper: plays request lines through a dispatcher as one client would, and returns the
 * reply lines exactly as the server would write them (parse errors included).
 */
import { errorReply, type QmpDispatcher } from './dispatcher.js';
import { genericError } from './errors.js';
import { JsonStream } from './json-stream.js';
import { formatQmpJson } from './json-writer.js';
import type { QmpSession } from './session.js';

export async function play(dispatcher: QmpDispatcher, session: QmpSession, input: string | Uint8Array): Promise<string[]> {
  const stream = new JsonStream();
  const out: string[] = [];
  for (const item of stream.feed(input)) {
    const reply =
      item.kind === 'error' ? errorReply(genericError(item.message)) : await dispatcher.dispatch(item.value, session);
    out.push(formatQmpJson(reply));
  }
  return out;
}
