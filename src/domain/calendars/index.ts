/**
 * Content calendars (issue 7): the file format, its validation, and rendering an entry for a
 * recipient. Pure: nothing here reads files or the database (src/loaders/calendars.ts reads
 * content-calendars/, src/services/calendars stores and publishes).
 */
export {
  Audience,
  CalendarDefinition,
  CalendarEntry,
  CalendarInput,
  CHANNELS,
  Conditions,
  DEFAULT_QUIET_HOURS,
  DEFAULT_TIME_ZONE,
  ENTRY_KINDS,
  EntryInput,
  Image,
  KEY_RE,
  Link,
  MiniProgram,
  Poll,
  QuietHours,
  RECIPIENT_VARIABLES,
  Variable,
  When,
  type CalendarKind,
  type Channel,
  type EntryKind,
} from "./schema";
export { entryWhen, inQuietHours, weekdayNumber, whenTime, type EntryWhen } from "./when";
export { analyzeTemplate, escapeValue, plainText, renderTemplate, TEMPLATE_FORMATS, type TemplateFormat } from "./template";
export { attachmentSummary, entryAttachments, entryPost, MissingVariableError, renderEntry, sampleValues, type EntryAttachment } from "./render";
export { formatCalendarIssue, formatIssuePath, issuePathParts, parseCalendar, type CalendarIssue, type ParsedCalendar, type ParseOptions } from "./validate";
export { calendarComplianceIssues } from "./compliance";
