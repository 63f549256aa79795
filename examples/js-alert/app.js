// alert: turns an Audit Events row into a Slack-style alert message for the event types that
// matter, and posts it to a webhook when the secret ALERT_WEBHOOK_URL is set.
//
// Input: {"row": {...an Audit Events row...}} or {"id": "..."} (the row is read from Audit
// Events), and optionally {"types": [...]}, the event types to alert on (default below).
// Output: the message ({"text", "blocks"}), or null when the event's type is not one of them.
import { flow, tables, secrets, http, log, FlowError } from './flowhost.js';

const DEFAULT_TYPES = ['member.add', 'member.remove', 'apikey.rotate', 'team_settings.update'];

export const run = flow((input) => {
  const row = input.row ?? eventById(input.id);
  const types = input.types ?? DEFAULT_TYPES;
  if (!Array.isArray(types)) throw new FlowError('input field `types` must be a list of event types');
  if (!types.includes(row.type)) return null;

  const message = alertFor(row);
  const webhook = webhookUrl();
  if (webhook !== null) {
    const resp = http.post(webhook, { json: message, retry: { attempts: 3 } });
    if (!resp.ok) throw new FlowError(`the webhook answered ${resp.status}: ${resp.text().slice(0, 200)}`);
    log.info(`alert for event ${row.id} (${row.type}) posted`);
  }
  return message;
});

function eventById(id) {
  if (typeof id !== 'string') throw new FlowError('input needs `row` (an Audit Events row) or `id` (its key)');
  const row = tables.get('Audit Events', id);
  if (row === null) throw new FlowError(`Audit Events has no event ${id}`);
  return row;
}

// The webhook, when the operator set the secret (FLOWHOST_SECRET_ALERT_WEBHOOK_URL or the
// secrets file); its host must be granted (alert.yaml, or the config file's grants.alert.hosts).
function webhookUrl() {
  try {
    return secrets.get('ALERT_WEBHOOK_URL');
  } catch (e) {
    if (e.kind === 'not-found') return null;
    throw e;
  }
}

function alertFor(row) {
  const who = row.actor ?? row.user ?? 'someone';
  const where = [row.project && `project ${row.project}`, row.hostname ?? row.server, row.team && `team ${row.team}`]
    .filter(Boolean)
    .join(', ');
  const text = `ASA ${row.type} by ${who}${where ? ` (${where})` : ''} at ${row.timestamp ?? 'an unknown time'}`;
  const fields = [
    ['Event', row.type],
    ['Actor', row.actor],
    ['User', row.user],
    ['Group', row.group],
    ['Project', row.project],
    ['Server', row.hostname ?? row.server],
    ['From', row.from_addr],
    ['Event id', row.id],
  ]
    .filter(([, v]) => v !== null && v !== undefined && v !== '')
    .map(([k, v]) => ({ type: 'mrkdwn', text: `*${k}*\n${v}` }));
  return {
    text,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: `ASA alert: ${row.type}` } },
      { type: 'section', text: { type: 'mrkdwn', text }, fields: fields.slice(0, 10) },
    ],
  };
}
