// Reading bodies with a size bound: web streams (requests, registry responses) and chunk lists.

/** Reads a web stream, at most `limit` bytes; undefined (after cancelling the stream) when it is larger. */
export async function readStreamLimited(
  stream: ReadableStream<Uint8Array> | null,
  declared: number | undefined,
  limit: number,
): Promise<Uint8Array | undefined> {
  if (declared !== undefined && declared > limit) {
    await stream?.cancel().catch(() => {});
    return undefined;
  }
  if (stream === null) return new Uint8Array();
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(value);
  }
  return concat(chunks, size);
}

/** Joins chunks into one buffer. */
export function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  if (chunks.length === 1 && chunks[0] !== undefined) return chunks[0];
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}
