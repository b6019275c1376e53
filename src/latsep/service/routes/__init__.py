"""One APIRouter per resource: jobs, results (stems, events), methods, health (+ metrics)."""
