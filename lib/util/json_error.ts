// Describing a JSON syntax error without any of the text: the parser's own message quotes the input around the error.

/** Where JSON.parse failed ("syntax error at character N", "the text ends early"), never the text itself. */
export function jsonErrorPlace(error: unknown): string {
  const message = error instanceof Error ? error.message : "";
  if (/Unexpected end of JSON input/i.test(message)) return "the text ends early";
  const position = /at position (\d+)/.exec(message)?.[1];
  return position === undefined ? "syntax error" : `syntax error at character ${position}`;
}
