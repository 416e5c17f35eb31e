/**
 * Reads a body that untrusted code controls (a dispatched workflow's request or result, an endpoint's response)
 * without ever holding more than `limitBytes` of it: a streamed body costs its sender almost nothing, and buffering it
 * whole would let one tenant exhaust the memory of an isolate that serves others. Over the limit, the stream is
 * cancelled.
 */
export class BodyTooLargeError extends Error {
  constructor(readonly limitBytes: number) {
    super(`body larger than ${limitBytes} bytes`);
  }
}

export async function readBoundedText(body: ReadableStream<Uint8Array> | null, limitBytes: number, declaredLength?: string | null): Promise<string> {
  if (!body) return "";
  if (declaredLength && Number(declaredLength) > limitBytes) {
    await body.cancel().catch(() => {});
    throw new BodyTooLargeError(limitBytes);
  }
  const reader = body.getReader();
  try {
    return new TextDecoder().decode(await readBoundedBytes(reader, limitBytes));
  } catch (error) {
    if (error instanceof BodyTooLargeError) await reader.cancel().catch(() => {});
    throw error;
  }
}

/**
 * Every byte the reader yields, or BodyTooLargeError as soon as there are more than `limitBytes`. The reader stays the
 * caller's to cancel — over the limit, or at a deadline the caller races this against.
 */
export async function readBoundedBytes(reader: ReadableStreamDefaultReader<Uint8Array>, limitBytes: number): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limitBytes) throw new BodyTooLargeError(limitBytes);
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
