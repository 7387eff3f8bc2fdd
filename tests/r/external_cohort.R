# A cohort nobody in the Python code wrote: generated here in R, written as
# data-contract CSVs, and analysed here with base R and lme4. The Python test
# (tests/test_report_vs_r.py) imports the CSVs with `python -m lupus_dash
# import`, runs `report`, and compares every row with these numbers.
#
# Conventions of STATISTICS.md (issue 10): differences are rounded to 10
# decimals before ranking; `p_value` is what the dashboard's p is: for the
# rank tests the exact conditional p (coin) when the comparison has <= 50
# patients, else the normal approximation (both kept: `p_exact`,
# `p_asymptotic`; `statistic` stays the SPSS Z / R's W); the estimate of a rank
# test is the Hodges-Lehmann shift with its CI (`estimate`, `ci_low`,
# `ci_high`: exact CI when nothing is tied or zero, else R's asymptotic CI);
# mixed-model rows carry lmerTest's Satterthwaite df, t, p and t-based CI;
# rm_anova rows the Greenhouse-Geisser / Huynh-Feldt corrections as SPSS prints them.
#
# Run from the repository root:  Rscript tests/r/external_cohort.R
# Writes tests/fixtures/r_cohort/{patients,visits}.csv and
#        tests/r/external_cohort_reference.json
suppressPackageStartupMessages({ library(jsonlite); library(lme4); library(lmerTest)
                                  library(coin) })
set.seed(20261122)

out_dir <- "tests/fixtures/r_cohort"
dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)

n <- 40
weeks <- c(0, 4, 12, 24, 52)
ids <- sprintf("R%03d", 1:n)
patients <- data.frame(
  patient_id = ids,
  cohort = "r_external",
  sex = sample(c("F", "M"), n, replace = TRUE, prob = c(0.8, 0.2)),
  age_at_baseline_years = round(runif(n, 18, 60), 1),
  biopsy_class = sample(c("III", "IV", "V", "IV+V", NA), n, replace = TRUE),
  immunosuppressant = sample(c("MMF", "AZA", "TAC"), n, replace = TRUE),
  organ_kidney = "true",
  stringsAsFactors = FALSE
)
pid <- rep(ids, each = length(weeks))
wk <- rep(weeks, times = n)
subj <- rep(rnorm(n, 0, 0.15), each = length(weeks))
t_eff <- c(0, 0.15, 0.22, 0.28, 0.30)[match(wk, weeks)]
visits <- data.frame(
  patient_id = pid,
  visit_week = wk,
  c3_g_l = round(pmax(0.1, 0.65 + subj + t_eff + rnorm(length(wk), 0, 0.12)), 2),
  c4_g_l = round(pmax(0.02, 0.11 + subj / 4 + t_eff / 5 + rnorm(length(wk), 0, 0.03)), 2),
  urine_protein_g_24h = round(rexp(length(wk), 1 / (1.5 - t_eff * 3)), 2),
  sledai2k = pmax(0, round(10 - t_eff * 25 + rnorm(length(wk), 0, 3))),
  pga = pmin(3, pmax(0, round((2 - t_eff * 4 + rnorm(length(wk), 0, 0.5)) * 2) / 2)),
  prednisone_mg_day = pmax(0, round((40 - t_eff * 110 + rnorm(length(wk), 0, 8)) / 2.5) * 2.5),
  anti_dsdna_positive = ifelse(runif(length(wk)) < (0.7 - t_eff * 1.2), "true", "false"),
  stringsAsFactors = FALSE
)
# Missing visits and values, as real exports have them.
drop <- sample(which(visits$visit_week > 0), 18)
visits <- visits[-drop, ]
visits$c3_g_l[sample(nrow(visits), 6)] <- NA
visits$pga[sample(nrow(visits), 5)] <- NA
write.csv(patients, file.path(out_dir, "patients.csv"), row.names = FALSE, na = "")
write.csv(visits, file.path(out_dir, "visits.csv"), row.names = FALSE, na = "")

# ---- reference numbers ------------------------------------------------------
v <- visits
v$anti_dsdna_positive <- v$anti_dsdna_positive == "true"
cont <- c("c3_g_l", "c4_g_l", "urine_protein_g_24h", "sledai2k", "pga", "prednisone_mg_day")
wide <- function(ep) {
  w <- reshape(v[, c("patient_id", "visit_week", ep)], idvar = "patient_id",
               timevar = "visit_week", direction = "wide")
  w <- w[match(ids, w$patient_id), ]
  m <- as.matrix(w[, paste0(ep, ".", weeks)])
  rownames(m) <- ids
  m
}
res <- list(summary = list(), longitudinal = list(), omnibus = list(), subgroups = list())
add <- function(section, row) res[[section]][[length(res[[section]]) + 1]] <<- row
EXACT_MAX_N <- 50

# Hodges-Lehmann estimate and CI as lupus_dash.stats: exact CI (R wilcox.test(exact =
# TRUE)) when nothing is tied (or zero) and n <= 50, else R's asymptotic CI.
hl_one <- function(nz, n) {
  w <- outer(nz, nz, "+") / 2
  exact_ci <- length(nz) == n && !any(duplicated(abs(nz))) && n <= EXACT_MAX_N && n >= 3
  wt <- suppressWarnings(wilcox.test(nz, exact = exact_ci, correct = FALSE, conf.int = TRUE,
                                     tol.root = 1e-12))
  ci <- if (all(is.finite(wt$conf.int))) as.numeric(wt$conf.int) else c(NA, NA)
  list(estimate = median(w[upper.tri(w, diag = TRUE)]), ci_low = ci[1], ci_high = ci[2],
       hl_conf_level = attr(wt$conf.int, "conf.level"),
       hl_ci_method = if (exact_ci) "exact" else "asymptotic")
}
hl_two <- function(a, b) {
  exact_ci <- !any(duplicated(c(a, b))) && length(a) + length(b) <= EXACT_MAX_N
  wt <- suppressWarnings(wilcox.test(a, b, exact = exact_ci, correct = TRUE, conf.int = TRUE,
                                     tol.root = 1e-12))
  list(estimate = median(outer(a, b, "-")), ci_low = wt$conf.int[1], ci_high = wt$conf.int[2],
       hl_conf_level = attr(wt$conf.int, "conf.level"),
       hl_ci_method = if (exact_ci) "exact" else "asymptotic")
}

for (ep in c(cont, "anti_dsdna_positive")) {
  m <- wide(ep)
  for (j in seq_along(weeks)) {
    x <- m[, j]; x <- x[!is.na(x)]
    if (ep == "anti_dsdna_positive") {
      add("summary", list(endpoint = ep, visit_week = weeks[j], n = length(x),
                          n_positive = sum(x), rate = mean(x)))
    } else {
      q <- quantile(x, c(0.25, 0.5, 0.75), type = 6, names = FALSE)  # SPSS quartiles
      add("summary", list(endpoint = ep, visit_week = weeks[j], n = length(x), mean = mean(x),
                          sd = sd(x), median = q[2], p25 = q[1], p75 = q[3]))
    }
  }
  for (cmp in c("baseline", "previous")) {
    for (j in 2:length(weeks)) {
      i <- if (cmp == "baseline") 1 else j - 1
      ok <- !is.na(m[, j]) & !is.na(m[, i])
      x <- m[ok, j]; y <- m[ok, i]
      if (ep == "anti_dsdna_positive") {
        b <- sum(x & !y); c <- sum(!x & y)
        p_mc <- if (b + c > 0) binom.test(b, b + c)$p.value else NA   # R: binom.test(b, b + c)
        add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                                 method = "mcnemar_exact", n = sum(ok), p_value = p_mc))
        tab <- matrix(c(sum(x), sum(!x), sum(y), sum(!y)), 2)
        add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                                 method = "fisher", n = sum(ok),
                                 p_value = fisher.test(tab)$p.value))   # R: fisher.test
        next
      }
      tt <- t.test(x, y, paired = TRUE)                                  # R: t.test paired
      add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                               method = "paired_t", n = sum(ok), statistic = unname(tt$statistic),
                               p_value = tt$p.value, mean_diff = unname(tt$estimate),
                               ci_low = tt$conf.int[1], ci_high = tt$conf.int[2]))
      d <- round(x - y, 10)                        # ties survive decimal noise
      if (any(d != 0)) {
        # R: wilcox.test(d, exact = FALSE, correct = FALSE) = the paired test on rounded d
        wt <- wilcox.test(d, exact = FALSE, correct = FALSE)
        nz <- sum(d != 0)
        z <- sign(unname(wt$statistic) - nz * (nz + 1) / 4) * qnorm(wt$p.value / 2, lower.tail = FALSE)
        zero <- rep(0, length(d))
        # R: coin::wilcoxsign_test(d ~ 0, distribution = "exact", zero.method = "Wilcoxon")
        p_exact <- if (length(d) <= EXACT_MAX_N) pvalue(wilcoxsign_test(
          d ~ zero, distribution = "exact", zero.method = "Wilcoxon")) else NA
        exact <- length(d) <= EXACT_MAX_N
        add("longitudinal", c(list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                                   method = "wilcoxon", n = sum(ok), statistic = z,
                                   p_value = if (exact) p_exact else wt$p.value,
                                   p_method = if (exact) "exact" else "asymptotic",
                                   p_exact = p_exact, p_asymptotic = wt$p.value,
                                   V = unname(wt$statistic)),
                              hl_one(d[d != 0], length(d))))
      }
      # SPSS pairwise comparisons after RM ANOVA: complete cases, Bonferroni over 10 pairs.
      cc <- m[complete.cases(m), ]
      mm <- choose(length(weeks), 2)
      tb <- t.test(cc[, j], cc[, i], paired = TRUE, conf.level = 1 - 0.05 / mm)
      add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = cmp,
                               method = "rm_anova_bonferroni", n = nrow(cc),
                               p_value = min(1, tb$p.value * mm), mean_diff = unname(tb$estimate),
                               ci_low = tb$conf.int[1], ci_high = tb$conf.int[2]))
    }
  }
  if (ep == "anti_dsdna_positive") next
  cc <- m[complete.cases(m), ]
  fr <- friedman.test(cc)                                                # R: friedman.test
  add("omnibus", list(endpoint = ep, method = "friedman", n = nrow(cc),
                      statistic = unname(fr$statistic), p_value = fr$p.value))
  long <- data.frame(value = as.vector(t(cc)), visit = factor(rep(weeks, nrow(cc))),
                     patient = factor(rep(rownames(cc), each = length(weeks))))
  av <- summary(aov(value ~ visit + Error(patient / visit), data = long))  # R: aov Error()
  tab <- av[["Error: patient:visit"]][[1]]
  # Sphericity as SPSS prints it, by hand from the double-centred covariance
  # matrix: Greenhouse-Geisser; Huynh-Feldt (1976, = Lecoutre's for one group),
  # capped at 1; lower bound; Mauchly's W with SPSS's first-order chi-square.
  f <- tab[["F value"]][1]; df1 <- tab[["Df"]][1]; df2 <- tab[["Df"]][2]
  k <- ncol(cc); nn <- nrow(cc); pk <- k - 1
  S <- cov(cc); P <- diag(k) - matrix(1 / k, k, k); D <- P %*% S %*% P
  gg <- sum(diag(D))^2 / (pk * sum(D * D))
  hf <- min(1, (nn * pk * gg - 2) / (pk * (nn - 1 - pk * gg)))
  M <- t(contr.poly(k)) %*% S %*% contr.poly(k)
  W <- det(M) / (sum(diag(M)) / pk)^pk
  chi2 <- -(nn - 1 - (2 * pk^2 + pk + 2) / (6 * pk)) * log(W)
  add("omnibus", list(endpoint = ep, method = "rm_anova", n = nrow(cc),
                      statistic = f, p_value = tab[["Pr(>F)"]][1], p_method = "F",
                      epsilon_gg = gg, p_greenhouse_geisser = pf(f, df1 * gg, df2 * gg,
                                                                 lower.tail = FALSE),
                      epsilon_hf = hf, p_huynh_feldt = pf(f, df1 * hf, df2 * hf,
                                                          lower.tail = FALSE),
                      epsilon_lb = 1 / pk, p_lower_bound = pf(f, df1 / pk, df2 / pk,
                                                              lower.tail = FALSE),
                      mauchly_w = W, mauchly_chi2 = chi2, mauchly_df = pk * (pk + 1) / 2 - 1,
                      mauchly_p = pchisq(chi2, pk * (pk + 1) / 2 - 1, lower.tail = FALSE)))
  # Mixed model: every available observation, REML.               R: lme4::lmer
  lv <- v[!is.na(v[[ep]]), c("patient_id", "visit_week", ep)]
  names(lv) <- c("patient", "visit", "value")
  lv$visit <- factor(lv$visit, levels = weeks)
  # R: summary(lmerTest::lmer(...), ddf = "Satterthwaite"): t, df, p; CI est +- qt(0.975, df) se
  fit <- lmerTest::lmer(value ~ visit + (1 | patient), data = lv, REML = TRUE)
  co <- summary(fit, ddf = "Satterthwaite")$coefficients
  for (j in 2:length(weeks)) {
    nm <- paste0("visit", weeks[j])
    est <- co[nm, "Estimate"]; se <- co[nm, "Std. Error"]; ddf <- co[nm, "df"]
    add("longitudinal", list(endpoint = ep, visit_week = weeks[j], comparator = "baseline",
                             method = "mixed_model", n = length(unique(lv$patient)),
                             mean_diff = est, estimate = est, se = se, df = ddf,
                             statistic = co[nm, "t value"], p_value = co[nm, "Pr(>|t|)"],
                             p_method = "t_satterthwaite",
                             ci_low = est - qt(0.975, ddf) * se,
                             ci_high = est + qt(0.975, ddf) * se,
                             ci_low_wald = est - qnorm(0.975) * se,
                             ci_high_wald = est + qnorm(0.975) * se))
  }
}

# Between-group tests per visit, grouped by sex (2 groups) and immunosuppressant (3).
pv <- merge(v, patients[, c("patient_id", "sex", "immunosuppressant")], by = "patient_id")
for (ep in cont) {
  for (w in weeks) {
    d <- pv[pv$visit_week == w & !is.na(pv[[ep]]), ]
    vv <- round(d[[ep]], 10); gg2 <- factor(d$sex)
    mw <- wilcox.test(vv ~ gg2, exact = FALSE, correct = TRUE)            # R: wilcox.test(x ~ g)
    exact <- length(vv) <= EXACT_MAX_N
    # R: coin::wilcox_test(x ~ g, distribution = "exact")
    p_exact <- if (exact) pvalue(wilcox_test(vv ~ gg2, distribution = "exact")) else NA
    add("subgroups", c(list(endpoint = ep, visit_week = w, group_by = "sex",
                            method = "mann_whitney", n = length(vv),
                            statistic = unname(mw$statistic),
                            p_value = if (exact) p_exact else mw$p.value,
                            p_method = if (exact) "exact" else "asymptotic",
                            p_exact = p_exact, p_asymptotic = mw$p.value),
                       hl_two(vv[gg2 == levels(gg2)[1]], vv[gg2 == levels(gg2)[2]])))
    wt <- t.test(d[[ep]] ~ d$sex)                                         # R: t.test(x ~ g)
    add("subgroups", list(endpoint = ep, visit_week = w, group_by = "sex", method = "welch_t",
                          statistic = unname(wt$statistic), p_value = wt$p.value))
    kw <- kruskal.test(d[[ep]] ~ factor(d$immunosuppressant))             # R: kruskal.test
    add("subgroups", list(endpoint = ep, visit_week = w, group_by = "immunosuppressant",
                          method = "kruskal", statistic = unname(kw$statistic),
                          p_value = kw$p.value))
  }
}
writeLines(toJSON(res, auto_unbox = TRUE, digits = NA, na = "null", pretty = TRUE),
           "tests/r/external_cohort_reference.json")
cat("wrote", out_dir, "and tests/r/external_cohort_reference.json\n")
