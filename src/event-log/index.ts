// The public face of the event-log feature: other features import from here, never from inner files
// (`npm run boundaries` checks it). Accounts and transfers list their events in the log's one shape.
export { EVENT_PAGE_DEFAULT, EVENT_PAGE_MAX, EventListRequest } from './event-list.request.js';
export { EventListResponse, EventPageResponse, EventResponse } from './event.response.js';
