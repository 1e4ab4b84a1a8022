/**
 * One committed event, ready for a broker: what every transport needs, in broker-neutral terms.
 * A transport maps it onto its own addressing (JetStream: subject; Kafka: topic + key).
 */
export interface OutgoingEvent {
  /** `account-<uuid>` → category `account`, id `<uuid>`: consumers subscribe to one or the other. */
  readonly category: string;
  readonly entityId: string;
  /** `<streamId>:<version>`: the broker drops a repeat of it (a republish after a crash). */
  readonly messageId: string;
  readonly headers: Readonly<Record<string, string>>;
  /** The event as GET /events shows it, as JSON. */
  readonly body: string;
}

/**
 * The seam between the relay and a broker. Another log (Kafka) is one class implementing it; see
 * docs/architecture.md for how such a class would be added and tested.
 */
export interface EventTransport {
  /** Resolves once the broker has durably accepted the event (a repeat counts as accepted). */
  publish(event: OutgoingEvent): Promise<void>;
  /** Whether an error means "the broker cannot be reached now, retry" rather than "this was refused". */
  isUnavailable(error: unknown): boolean;
  close(): Promise<void>;
}

export const EVENT_TRANSPORT = Symbol('EventTransport');
