/**
 * A check of a protobuf message's framing before it is decoded. protobufjs, under @grpc/proto-loader,
 * reads a length-delimited string that claims more bytes than the message holds as whatever bytes are
 * left (its BufferReader clamps the end), so a message cut short decodes into a silently wrong
 * request. This walks the top-level fields (tags, wire types, lengths, without decoding any value) and
 * says what is wrong, in microseconds: it skips over each field's bytes instead of reading them.
 * Nested messages are bounded by their field's checked length; their own framing is protobufjs's.
 */
export function wireFormatError(buf: Uint8Array): string | undefined {
  let pos = 0;
  const varint = (): number | undefined => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) return undefined;
      const b = buf[pos++]!;
      value += (b & 0x7f) * scale;
      if (b < 0x80) return value;
      scale *= 128;
    }
    return undefined;
  };
  while (pos < buf.length) {
    const at = pos;
    const tag = varint();
    if (tag === undefined) return `truncated field tag at byte ${at}`;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) return `field number 0 at byte ${at}`;
    switch (wire) {
      case 0:
        if (varint() === undefined) return `field ${field}: truncated varint at byte ${at}`;
        break;
      case 1:
        pos += 8;
        break;
      case 2: {
        const length = varint();
        if (length === undefined) return `field ${field}: truncated length at byte ${at}`;
        pos += length;
        break;
      }
      case 5:
        pos += 4;
        break;
      default:
        return `field ${field}: wire type ${wire} at byte ${at} (this protocol uses 0, 1, 2 and 5)`;
    }
    if (pos > buf.length) return `field ${field} at byte ${at} runs ${pos - buf.length} bytes past the end of the ${buf.length}-byte message`;
  }
  return undefined;
}
