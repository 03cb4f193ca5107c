// steno web demo, words: the server's error codes and WebSocket close codes
// (docs/protocol.md) in, sentences a person can act on out.

/**
 * One server `error` as a sentence. `retryAfterS` is the seconds left before
 * a retry makes sense (the page counts it down), or null when not known.
 */
export function errorSentence(code, message, retryAfterS) {
  switch (code) {
    case 'over_capacity':
      return `The server is at capacity${loadOf(message)}. ${retryIn(retryAfterS)}`;
    case 'not_ready':
      return `The server is still loading its speech model. ${retryIn(retryAfterS)}`;
    case 'bad_request':
      return `The server did not understand a request from this page (${message}).`;
    case 'bad_audio':
      return 'The server could not decode some of the audio this page sent. '
        + 'If it keeps happening the server will end the session.';
    case 'message_too_large':
      return 'This page sent the server a message larger than it accepts, so the session was closed.';
    case 'idle_timeout':
      return 'The session was closed because the server received no audio for too long.';
    case 'max_duration':
      return 'The session reached the server\'s time limit and was closed. Press Start to go on.';
    case 'audio_overflow':
      return 'The server fell too far behind transcribing this session and closed it. Try again in a moment.';
    case 'slow_consumer':
      return 'The server dropped the connection because this page was not taking its messages in time.';
    case 'shutting_down':
      return 'The server is shutting down; what you said so far was transcribed. Try again in a little while.';
    case 'internal':
      return 'Something went wrong inside the server, so it closed the session. Please try again.';
    default:
      return `The server reported an error: ${message || code}.`;
  }
}

/**
 * A refusal the page is waiting out by itself: what the server said, and
 * when the page tries again (`leftS`, counted down) of how many tries.
 */
export function retrySentence(code, message, leftS, attempt, of) {
  const what = code === 'over_capacity'
    ? `The server is at capacity${loadOf(message)}.`
    : 'The server is still loading its speech model.';
  const when = leftS > 0
    ? `Trying again in ${leftS === 1 ? '1 second' : `${leftS} seconds`}`
    : 'Trying again now';
  return `${what} ${when} (${attempt} of ${of}).`;
}

/** " (24 of 24)" from "over capacity: 24 of 24 sessions in use, retry later". */
function loadOf(message) {
  const m = /(\d+)\s+of\s+(\d+)/.exec(message || '');
  return m ? ` (${m[1]} of ${m[2]})` : '';
}

/** A close that no `error` message explained. */
export function closeSentence(code, reason) {
  switch (code) {
    case 1000: return 'The server ended the session.';
    case 1001: return 'The server is going away (restarting or shutting down). Try again in a little while.';
    case 1006: return 'The connection to the server was lost.';
    case 1007: return 'The server closed the session because it could not decode the audio.';
    case 1008: return `The server closed the session (${reason || 'policy'}).`;
    case 1009: return 'The server closed the session: a message from this page was too large.';
    case 1011: return 'Something went wrong inside the server, so it closed the session. Please try again.';
    case 1013: return 'The server is too busy to take a session now. Try again in a few seconds.';
    default: return `The connection closed unexpectedly (code ${code}${reason ? `: ${reason}` : ''}).`;
  }
}

function retryIn(s) {
  if (s == null) return 'Try again later.';
  if (s <= 0) return 'You can try again now.';
  return `Try again in ${s === 1 ? '1 second' : `${s} seconds`}.`;
}

/** Session audio time as m:ss.t */
export function clock(ms) {
  const s = ms / 1000;
  return `${Math.floor(s / 60)}:${(s % 60).toFixed(1).padStart(4, '0')}`;
}
