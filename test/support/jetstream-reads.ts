import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

// Reads of a JetStream stream for tests and the relay benchmark (no jest here: the bench imports it).
export interface RelayedMessage {
  readonly seq: number;
  readonly subject: string;
  readonly msgId: string;
  readonly headers: Record<string, string>;
  readonly body: any;
}

/** Every message the JetStream stream holds, in stream order (read by sequence, after the fact). */
export async function readJetStream(natsUrl: string, stream: string): Promise<RelayedMessage[]> {
  const connection = await connect({ servers: natsUrl });
  try {
    const manager = await jetstreamManager(connection);
    const info = await manager.streams.info(stream);
    const messages: RelayedMessage[] = [];
    for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
      const message = await manager.streams.getMessage(stream, { seq });
      if (!message) continue;
      const headers: Record<string, string> = {};
      for (const key of message.header.keys()) headers[key] = message.header.get(key);
      messages.push({ seq, subject: message.subject, msgId: headers['Nats-Msg-Id'], headers, body: message.json() });
    }
    return messages;
  } finally {
    await connection.close();
  }
}

/** How many messages the stream holds now (0 when it does not exist yet). */
export async function jetStreamCount(natsUrl: string, stream: string): Promise<number> {
  const connection = await connect({ servers: natsUrl });
  try {
    const manager = await jetstreamManager(connection);
    return (await manager.streams.info(stream)).state.messages;
  } catch {
    return 0;
  } finally {
    await connection.close();
  }
}
