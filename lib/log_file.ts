/**
 * What the API says about its log files, shared by the client (lib/api.ts), the download
 * (lib/download.ts), the listing and the destinations: one listed file, one page of the listing,
 * and the query that asks for a page. Types only, so that no module needs another to name them.
 *
 * @example
 * ```ts
 * const file: LogFile = { id: "eclf_1", event_type: "AUTH_LOG", end_time: "2026-07-02T00:00:00Z" };
 * const query: ListQuery = { eventType: file.event_type, limit: 100, after: file.end_time };
 * ```
 */

/** One file as the listing names it. */
export interface LogFile {
  id: string;
  event_type: string;
  end_time: string;
  file_name?: string;
  file_size?: number;
  file_sha256?: string;
}

/** One page of the listing: its files, and where the next page starts. */
export interface ListPage {
  data: LogFile[];
  has_more: boolean;
  last_end_time: string | null;
}

/** What one listing request asks for. */
export interface ListQuery {
  eventType: string;
  limit: number;
  after: string;
  before?: string;
}
