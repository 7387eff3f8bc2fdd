# Reference numbers for tests/test_mmrm.py, tests/test_survival.py and
# tests/test_treat_to_target.py, computed with nlme + emmeans (MMRM) and survival (KM, Cox).
# Run from the repository root:  Rscript tests/r/t2t_reference.R
# Reads tests/r/t2t_fixture.csv (written by tests/r/make_t2t_fixture.py) and writes
# tests/r/t2t_reference.json. Every block names the R call the tests compare with.
suppressPackageStartupMessages({
  library(jsonlite)
  library(nlme)
  library(emmeans)
  library(numDeriv)
  library(survival)
})
d <- read.csv("tests/r/t2t_fixture.csv", stringsAsFactors = FALSE)
weeks <- c(0, 4, 12, 24, 52)
end_week <- 52
out <- list(r_version = R.version.string,
            nlme_version = as.character(packageVersion("nlme")),
            emmeans_version = as.character(packageVersion("emmeans")),
            survival_version = as.character(packageVersion("survival")))

# ---------------------------------------------------------------------------- MMRM
# Change from baseline at the scheduled post-baseline visits, every available
# observation (treatment policy), patients sorted so P01 (who has week 4) comes first:
# varIdent's reference stratum is then visit 4.
s <- d[d$week %in% weeks, ]
b <- s[s$week == 0, c("patient", "value")]; names(b)[2] <- "base"
m <- merge(s[s$week > 0, ], b, by = "patient")
m$chg <- m$value - m$base
m$visit <- factor(m$week, levels = weeks[-1])
m$visit_index <- as.integer(m$visit)
m$group <- factor(m$group)
m <- m[order(m$patient, m$week), ]
rownames(m) <- NULL

# Satterthwaite df the way emmeans computes them for gls (mode = "satterthwaite",
# which needs glsControl(natural = FALSE): with nlme's default natural = TRUE emmeans
# falls back to the random "appx-satterthwaite"). emmeans takes A = nlme's apVar, a
# finite-difference Hessian (fdHess); "exact" replaces A by the inverse of
# numDeriv::hessian of the same REML log-likelihood, everything else emmeans' own.
exact_A <- function(fit) {
  A <- fit$apVar
  pars <- attr(A, "Pars")
  obj <- fit$modelStruct
  conLin <- list(Xy = cbind(model.matrix(formula(fit), data = m), m$chg),
                 dims = fit$dims, logLik = 0, sigma = 0, fixedSigma = FALSE)

  N <- fit$dims$N - fit$dims$REML * fit$dims$p
  ll <- function(x) nlme:::glsApVar.fullGlsLogLik(x, obj, conLin, fit$dims, N)
  A2 <- solve(-numDeriv::hessian(ll, pars))
  dimnames(A2) <- dimnames(A)
  A2
}
emm_rows <- function(e) {
  sm <- summary(e, infer = c(TRUE, TRUE))
  lapply(seq_len(nrow(sm)), function(i) as.list(sm[i, ]))
}
with_exact <- function(e, A2) { e@dfargs$A <- A2; e }
fc_ddf <- function(e, L, V, beta) {
  # lmerTest::contestMD's F test (eigen of L V L', lmerTest:::get_Fstat_ddf) with
  # emmeans' per-direction Satterthwaite df (e@dffun).
  ev <- eigen(L %*% V %*% t(L))
  q <- sum(ev$values > max(sqrt(.Machine$double.eps) * ev$values[1], 0))
  PtL <- crossprod(ev$vectors, L)[1:q, , drop = FALSE]
  Fv <- sum(drop(PtL %*% beta)^2 / ev$values[1:q]) / q
  nu <- apply(PtL, 1, function(k) e@dffun(k, e@dfargs))
  fun <- function(nu) if (any(nu <= 2)) 2 else { E <- sum(nu / (nu - 2)); 2 * E / (E - length(nu)) }
  ddf <- if (length(nu) == 1) nu else if (all(abs(diff(nu)) < 1e-8)) mean(nu) else fun(nu)
  list(F = Fv, num_df = q, den_df = ddf, p_value = pf(Fv, q, ddf, lower.tail = FALSE), nu = nu)
}
mm <- list()
ctl <- glsControl(natural = FALSE)
for (spec in list(list(key = "basic", f = chg ~ visit + base),
                  list(key = "covariate", f = chg ~ visit + base + age),
                  list(key = "group", f = chg ~ visit * group + base))) {
  # The formula goes into the call itself (bquote): emmeans re-evaluates call$model, and
  # a symbol such as spec$f there crashes R.
  fit <- eval(bquote(gls(.(spec$f), data = m,
                         correlation = corSymm(form = ~ visit_index | patient),
                         weights = varIdent(form = ~ 1 | visit), method = "REML",
                         control = ctl)))
  A2 <- exact_A(fit)
  specs <- if (spec$key == "group") ~ group | visit else ~ visit
  # R: emmeans(fit, specs, mode = "satterthwaite")  (covariates at their mean over rows)
  e <- emmeans(fit, specs, mode = "satterthwaite", data = m)
  r <- list(
    coef = as.list(coef(fit)), logLik = as.numeric(logLik(fit)), sigma = fit$sigma,
    varcov = unclass(getVarCov(fit, individual = "P01")),
    base_mean = mean(m$base), age_mean = mean(m$age),
    lsmeans_emmeans = emm_rows(e),                    # df from nlme's apVar
    lsmeans_exact = emm_rows(with_exact(e, A2)))      # df from numDeriv's Hessian
  if (spec$key == "group") {
    # R: contrast(emmeans(fit, ~ group | visit), "revpairwise")  (B - A at each visit)
    cg <- contrast(e, "revpairwise")
    r$group_contrasts_emmeans <- emm_rows(cg)
    r$group_contrasts_exact <- emm_rows(with_exact(cg, A2))
    # Visit x group interaction: Wald F on the visit:group coefficients (treatment coding)
    bet <- coef(fit); V <- vcov(fit)
    L <- diag(length(bet))[grepl(":", names(bet)), , drop = FALSE]
    eall <- emmeans(fit, ~ visit * group, mode = "satterthwaite", data = m)
    r$interaction_exact <- fc_ddf(with_exact(eall, A2), L, V, bet)
    r$interaction_emmeans <- fc_ddf(eall, L, V, bet)
    # R: joint_tests(fit) (emmeans: df2 = min of the per-row df; F printed to 3 decimals)
    jt <- as.data.frame(joint_tests(fit, mode = "satterthwaite", data = m))
    r$joint_tests <- lapply(seq_len(nrow(jt)), function(i) as.list(jt[i, ]))
    # R: anova(fit, type = "marginal")  (nlme: F with N - p denominator df)
    an <- anova(fit, type = "marginal")
    r$anova_marginal <- list(F = an["visit:group", "F-value"], p = an["visit:group", "p-value"])
  }
  mm[[spec$key]] <- r
}
out$mmrm <- mm

# ---------------------------------------------------------------------------- time to event
# Time to first post-baseline LLDAS, by strategy (the rules of lupus_dash/treat_to_target.py,
# written out here independently). Patients in LLDAS at baseline are left out.
tt_rules <- function(strategy, col = "lldas") {
  res <- NULL
  for (p in sort(unique(d$patient))) {
    x <- d[d$patient == p, ]; x <- x[order(x$week), ]
    stop <- x$stop_week[1]
    b0 <- x[x$week == 0, col]
    at_base <- length(b0) == 1 && !is.na(b0) && b0 == 1
    post <- x[x$week > 0 & !is.na(x[[col]]), ]
    if (strategy != "treatment_policy" && !is.na(stop)) post <- post[post$week <= stop, ]
    ev <- post$week[post[[col]] == 1]
    if (length(ev)) { time <- min(ev); event <- 1 }
    else if (strategy == "composite" && !is.na(stop)) {
      time <- max(end_week, if (nrow(post)) max(post$week) else 0); event <- 0 }
    else if (nrow(post)) { time <- max(post$week); event <- 0 }
    else { time <- NA; event <- NA }
    res <- rbind(res, data.frame(patient = p, group = x$group[1], time = time, event = event,
                                 at_baseline = at_base))
  }
  res
}
km_block <- function(tt) {
  z <- tt[!tt$at_baseline & !is.na(tt$time), ]
  f1 <- survfit(Surv(time, event) ~ 1, data = z)           # R: survfit(Surv(time, event) ~ 1)
  tab1 <- summary(f1)$table
  f2 <- survfit(Surv(time, event) ~ group, data = z)
  tab2 <- summary(f2)$table
  cx <- coxph(Surv(time, event) ~ group, data = z)          # R: coxph(..., ties = "efron")
  sc <- summary(cx)
  sd <- survdiff(Surv(time, event) ~ group, data = z)       # R: survdiff (log-rank)
  risk_times <- c(0, 4, 12, 24, 52)
  rk <- summary(f1, times = risk_times, extend = TRUE)
  rk2 <- summary(f2, times = risk_times, extend = TRUE)
  list(
    per_patient = lapply(seq_len(nrow(tt)), function(i) as.list(tt[i, ])),
    n = nrow(z), events = sum(z$event), n_at_baseline = sum(tt$at_baseline),
    median = unname(tab1["median"]), median_lcl = unname(tab1["0.95LCL"]),
    median_ucl = unname(tab1["0.95UCL"]),
    group_median = unname(tab2[, "median"]), group_lcl = unname(tab2[, "0.95LCL"]),
    group_ucl = unname(tab2[, "0.95UCL"]),
    km_time = f1$time, km_surv = f1$surv, km_lower = f1$lower, km_upper = f1$upper,
    risk_times = risk_times, n_risk = rk$n.risk,
    n_risk_A = rk2$n.risk[rk2$strata == "group=A"], n_risk_B = rk2$n.risk[rk2$strata == "group=B"],
    cox_coef = unname(coef(cx)), cox_se = unname(sqrt(diag(vcov(cx)))),
    hr = unname(sc$conf.int[1, "exp(coef)"]), hr_lower = unname(sc$conf.int[1, "lower .95"]),
    hr_upper = unname(sc$conf.int[1, "upper .95"]),
    p_wald = unname(sc$waldtest["pvalue"]), p_score = unname(sc$sctest["pvalue"]),
    score = unname(sc$sctest["test"]), p_lr = unname(sc$logtest["pvalue"]),
    logrank_chisq = sd$chisq, logrank_p = pchisq(sd$chisq, 1, lower.tail = FALSE))
}
out$time_to_lldas <- lapply(c(composite = "composite", treatment_policy = "treatment_policy",
                              while_on_treatment = "while_on_treatment"),
                            function(st) km_block(tt_rules(st)))
# A median that sits exactly at S = 0.5 (midpoint rule of print.survfit) and a group
# whose median is not reached: survfit on small hand-made data.
f_half <- survfit(Surv(c(2, 4, 6, 8), c(1, 1, 1, 1)) ~ 1)
out$median_half <- as.list(summary(f_half)$table[c("median", "0.95LCL", "0.95UCL")])
f_nr <- survfit(Surv(c(3, 5, 7, 9, 11, 13), c(1, 0, 0, 1, 0, 0)) ~ 1)
out$median_not_reached <- as.list(summary(f_nr)$table[c("median", "0.95LCL", "0.95UCL")])
# Heavy ties for Efron: R: coxph(Surv(t, e) ~ g) on tied event times.
tie <- data.frame(t = c(4, 4, 4, 4, 8, 8, 8, 12, 12, 12, 12, 16, 4, 4, 8, 8, 12, 16, 16, 16),
                  e = c(1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 0),
                  g = rep(c("A", "B"), c(12, 8)))
ct <- coxph(Surv(t, e) ~ g, data = tie); st <- summary(ct)
out$cox_ties <- list(t = tie$t, e = tie$e, g = tie$g, coef = unname(coef(ct)),
                     se = unname(sqrt(vcov(ct))[1]), p_wald = unname(st$waldtest["pvalue"]),
                     p_score = unname(st$sctest["pvalue"]), p_lr = unname(st$logtest["pvalue"]))

# ---------------------------------------------------------------------------- time in target
# Share of observed time in LLDAS per patient, by strategy (rules as above: the state
# at an assessed visit holds until the next one; composite: failure from the stop to week 52).
tit_rules <- function(strategy, col) {
  res <- NULL
  for (p in sort(unique(d$patient))) {
    x <- d[d$patient == p & !is.na(d[[col]]), ]; x <- x[order(x$week), ]
    stop <- d$stop_week[d$patient == p][1]
    if (strategy != "treatment_policy" && !is.na(stop)) x <- x[x$week <= stop, ]
    wk <- x$week; stt <- x[[col]]
    if (strategy == "composite" && !is.na(stop)) {
      wk <- c(wk, stop, max(end_week, stop)); stt <- c(stt, 0, 0) }
    share <- NA
    if (length(wk) >= 2 && max(wk) > min(wk)) share <- sum(stt[-length(stt)] * diff(wk)) / (max(wk) - min(wk))
    res <- rbind(res, data.frame(patient = p, share = share))
  }
  res
}
tit <- list()
for (st in c("composite", "treatment_policy", "while_on_treatment")) {
  for (col in c("lldas", "remission")) {
    r <- tit_rules(st, col); sh <- r$share[!is.na(r$share)]
    k <- sum(sh >= 0.5); pt <- prop.test(k, length(sh), correct = FALSE)  # Wilson
    tit[[paste(st, col, sep = "_")]] <- list(
      share = r$share,
      quantiles = unname(quantile(sh, c(0.25, 0.5, 0.75), type = 6)),  # R: quantile(type = 6)
      n = length(sh), n_ge_50pct = k, ci = unname(pt$conf.int[1:2]))
  }
}
out$time_in_target <- tit

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, na = "null", null = "null", pretty = TRUE),
           "tests/r/t2t_reference.json")
cat("wrote tests/r/t2t_reference.json\n")
