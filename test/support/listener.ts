import pg from 'pg';

/**
 * A plain connection that LISTENs on `channels` and hands every notification to `heard`: it hears
 * what instances say to each other, and says nothing itself unless a test makes it (it is not an
 * instance).
 */
export async function listenTo(url: string, channels: readonly string[], heard: (message: pg.Notification) => void): Promise<pg.Client> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  client.on('notification', heard);
  await client.query(channels.map((channel) => `LISTEN ${channel}`).join('; '));
  return client;
}
