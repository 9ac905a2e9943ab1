/* Policies that are valid but hand a peer more than its owner may think: logged as warnings
 * at start, on every reload, and by `helperd --check`. */
#ifndef HELPERD_POLICY_RISKS_H
#define HELPERD_POLICY_RISKS_H

#include "policy.h"

/* Warns about each risk in pol; self is this guest's peer index, or -1. */
void policy_warn_risks(const struct policy *pol, int self);

#endif
