-- A finished job's entry in the upstream-spend stream, with the credits its settlement charged
-- (0 unless it charged): one definition for the scripts that end a job (save_job.lua,
-- settle_late_answer.lua), so reconciliation reads every entry the same way.
local function append_spend(stream, max_len, job_id, settle_mode, settled, record)
  local charged = 0
  if settle_mode == 'charge' then
    charged = settled
  end
  redis.call('XADD', stream, 'MAXLEN', '~', max_len, '*', 'job_id', job_id, 'charged', charged,
    'record', record)
end
