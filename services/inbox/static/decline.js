// The decline form of the referral page: a decline for the national list's « Autre » needs a comment for
// the requester (the router refuses it without one, `reason_needs_message`, and so does the inbox): the
// comment becomes required while « Autre » is chosen. The server checks it all the same.
for (const form of document.querySelectorAll('form.step')) {
  const status = form.querySelector('input[name="status"]');
  const reason = form.querySelector('select[name="reason_code"]');
  const note = form.querySelector('textarea[name="note"]');
  if (!status || status.value !== 'declined' || !reason || !note) continue;
  const follow = () => {
    note.required = reason.value === 'other';
  };
  reason.addEventListener('change', follow);
  follow();
}
